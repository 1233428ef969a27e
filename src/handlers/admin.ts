/** The admin ops of PROTOCOL.md §11: grant_open, grant_close, grant_list, daemon_status. */
import { ProxyError } from '../protocol/errors.js';
import type { AdminService, Handler, HandlerContext } from './context.js';

type AdminOp = 'grant_open' | 'grant_close' | 'grant_list' | 'daemon_status';

/** Only the control socket's grant holds the `admin` group; this guards a daemon built without a control plane. */
function adminOf(ctx: HandlerContext): AdminService {
  if (!ctx.admin) throw new ProxyError('UNAUTHORIZED', 'Admin operations are served only on the control socket');
  return ctx.admin;
}

export const adminHandlers: { [O in AdminOp]: Handler<O> } = {
  grant_open: (ctx, payload) => adminOf(ctx).openGrant(ctx.conn, payload, ctx.signal),
  grant_close: async (ctx, { grant_id }) => {
    if (!(await adminOf(ctx).closeGrant(grant_id))) throw new ProxyError('NOT_FOUND', `No grant ${grant_id} was opened on this daemon`);
    return {};
  },
  grant_list: async (ctx) => ({ grants: adminOf(ctx).listGrants() }),
  daemon_status: (ctx) => adminOf(ctx).status(),
};

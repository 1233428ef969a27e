/**
 * The HTTPS connection pools of inject mode (undici Agents, keep-alive): one for the system roots and
 * one per extra `ca` of a route (system roots plus that file). Certificates are always verified.
 */
import { createHash } from 'node:crypto';
import tls from 'node:tls';
import { Agent } from 'undici';

export class UpstreamAgents {
  private readonly agents = new Map<string, Agent>();

  /** The pool for upstreams trusted through the system roots and, when given, `caPem`. */
  for(caPem?: string): Agent {
    const key = caPem === undefined ? '' : createHash('sha256').update(caPem).digest('hex');
    let agent = this.agents.get(key);
    if (!agent) {
      agent = new Agent({ connect: { rejectUnauthorized: true, ...(caPem !== undefined && { ca: [...tls.rootCertificates, caPem] }) } });
      this.agents.set(key, agent);
    }
    return agent;
  }

  async close(): Promise<void> {
    const agents = [...this.agents.values()];
    this.agents.clear();
    await Promise.all(agents.map((a) => a.close().catch(() => a.destroy())));
  }
}

/** The CLI login formats `credproxy import --from` reads, by their `--from` name. */
import { claudeCode } from './claudeCode.js';
import { codexCli } from './codexCli.js';
import { geminiCli } from './geminiCli.js';
import { qwenCode } from './qwenCode.js';
import type { ToolFormat } from './toolFormat.js';

export const TOOL_FORMATS: ReadonlyMap<string, ToolFormat> = new Map([claudeCode, codexCli, geminiCli, qwenCode].map((f) => [f.name, f]));

/** The format named `name`, or undefined. */
export function toolFormat(name: string): ToolFormat | undefined {
  return TOOL_FORMATS.get(name);
}

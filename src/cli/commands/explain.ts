// `moat explain -f PATH --from ns/pod|IP --to ns/pod|IP --port 80|name [--protocol TCP] [-o text|json]`:
// the evaluator's verdict for one flow in words, egress (of the source) and ingress (of the
// destination), policy by policy and rule by rule; with admin policies in the input, tier by tier
// (Admin, NetworkPolicy, Baseline). JSON: see Explanation in src/analysis/explain.ts.
import { Option, type Command } from 'commander';
import { UsageError } from '../../errors.js';
import { explain, formatExplanation, resolveFlow } from '../../analysis/explain.js';
import { loadSnapshot } from '../io.js';
import { parseProtocol } from './matrix.js';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export interface ExplainArgs {
  readonly filename: readonly string[];
  readonly from?: string;
  readonly to?: string;
  readonly port?: string;
  readonly protocol: string;
  readonly output: string;
}

export async function runExplain(a: ExplainArgs): Promise<string> {
  if (a.filename.length === 0)
    throw new UsageError('explain: at least one -f PATH is required (use -f - for stdin)');
  for (const [flag, v] of [
    ['--from', a.from],
    ['--to', a.to],
    ['--port', a.port],
  ] as const) {
    if (v === undefined || v === '') throw new UsageError(`explain: ${flag} is required`);
  }
  const protocol = parseProtocol(a.protocol);
  const snapshot = await loadSnapshot(a.filename);
  const flow = resolveFlow(snapshot, { from: a.from!, to: a.to!, port: a.port!, protocol });
  const e = explain(snapshot, flow);
  return a.output === 'json' ? `${JSON.stringify(e, null, 2)}\n` : formatExplanation(e);
}

export function registerExplain(program: Command): void {
  program
    .command('explain')
    .description('why a flow is allowed or denied: policy by policy, rule by rule')
    .option('-f, --filename <path>', 'file, directory (recursive) or - for stdin; repeatable', collect, [])
    .option('--from <endpoint>', 'source: NAMESPACE/POD or an IP address')
    .option('--to <endpoint>', 'destination: NAMESPACE/POD or an IP address')
    .option('--port <port>', "port number, or a name resolved against the destination pod's containerPorts")
    .option('--protocol <protocol>', 'TCP, UDP or SCTP', 'TCP')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts: ExplainArgs) => {
      process.stdout.write(await runExplain(opts));
    });
}

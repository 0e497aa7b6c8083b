// `moat explain -f PATH --from ns/pod|IP --to ns/pod|IP --port 80|name [--protocol TCP] [-o text|json]`:
// the evaluator's verdict for one flow in words, egress (of the source) and ingress (of the
// destination), policy by policy and rule by rule; with admin policies in the input, tier by tier
// (Admin, NetworkPolicy, Baseline). JSON: see Explanation in src/analysis/explain.ts.
import { Option, type Command } from 'commander';
import { UsageError } from '../../errors.js';
import { explain, formatExplanation, resolveEndpoint, resolveFlow } from '../../analysis/explain.js';
import { resolveService, serviceEndpoints, servicePort, targetPortOn } from '../../analysis/service.js';
import {
  PROTOCOLS,
  podKey,
  type Protocol,
  type Service,
  type ServicePort,
  type Snapshot,
} from '../../model/types.js';
import { evaluate, type Endpoint } from '../../policy/evaluate.js';
import { addClusterOptions, collectValues, IGNORE_HELP, loadInput, type InputArgs } from '../io.js';
import { parseProtocol } from './matrix.js';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export interface ExplainArgs extends InputArgs {
  readonly exitCode?: boolean;
  readonly from?: string;
  readonly to?: string;
  readonly port?: string;
  readonly protocol?: string;
  readonly output: string;
}

export interface ExplainResult {
  readonly text: string;
  /** The flow is denied; without --port: no declared port is open. */
  readonly denied: boolean;
}

export async function runExplain(a: ExplainArgs): Promise<ExplainResult> {
  for (const [flag, v] of [
    ['--from', a.from],
    ['--to', a.to],
  ] as const) {
    if (v === undefined || v === '') throw new UsageError(`explain: ${flag} is required`);
  }
  if (a.port === '') throw new UsageError('explain: --port needs a value');
  const protocol = a.protocol !== undefined ? parseProtocol(a.protocol) : undefined;
  const snapshot = await loadInput('explain', a);
  const svc = resolveService(snapshot, a.to!, '--to');
  if (svc !== undefined) return viaService(snapshot, a.from!, svc, a.port, protocol, a.output);
  if (a.port === undefined) return openPorts(snapshot, a.from!, a.to!, protocol, a.output);
  const flow = resolveFlow(snapshot, { from: a.from!, to: a.to!, port: a.port, protocol: protocol ?? 'TCP' });
  const e = explain(snapshot, flow);
  const text = a.output === 'json' ? `${JSON.stringify(e, null, 2)}\n` : formatExplanation(e);
  return { text, denied: !e.verdict.allowed };
}

/** Without --port: every containerPort the destination declares, open or closed. */
function openPorts(
  snapshot: Snapshot,
  from: string,
  to: string,
  protocol: Protocol | undefined,
  output: string,
): ExplainResult {
  const src = resolveEndpoint(snapshot, from, '--from');
  const dst = resolveEndpoint(snapshot, to, '--to');
  const name = (e: Endpoint): string => (e.kind === 'pod' ? podKey(e.pod) : e.ip);
  const declared = dst.kind === 'pod' ? dst.pod.ports : [];
  const ports = declared
    .filter((cp) => protocol === undefined || cp.protocol === protocol)
    .map((cp) => {
      const v = evaluate(snapshot, { src, dst, port: cp.containerPort, protocol: cp.protocol });
      return {
        port: cp.containerPort,
        protocol: cp.protocol,
        ...(cp.name !== undefined ? { name: cp.name } : {}),
        allowed: v.allowed,
      };
    })
    .sort((x, y) => x.port - y.port || PROTOCOLS.indexOf(x.protocol) - PROTOCOLS.indexOf(y.protocol));
  const denied = !ports.some((p) => p.allowed);
  if (output === 'json') {
    return { text: `${JSON.stringify({ from: name(src), to: name(dst), ports }, null, 2)}\n`, denied };
  }
  if (ports.length === 0) {
    return {
      text: `${name(src)} -> ${name(dst)}: ${name(dst)} declares no ${protocol ?? ''}${protocol ? ' ' : ''}containerPort; use --port\n`,
      denied,
    };
  }
  const lines = [`${name(src)} -> ${name(dst)}: the destination's declared ports`];
  for (const p of ports) {
    lines.push(
      `  ${`${p.protocol}/${p.port}`.padEnd(10)} ${(p.name ?? '').padEnd(15)} ${p.allowed ? 'open' : 'denied'}`.trimEnd(),
    );
  }
  lines.push(`(moat explain --port PORT tells why)`);
  return { text: `${lines.join('\n')}\n`, denied };
}

/**
 * To a Service: each pod behind it, at the port the Service sends there (targetPort, a name looked
 * up per pod). Denied unless every endpoint is reachable; without --port, every Service port.
 */
function viaService(
  snapshot: Snapshot,
  from: string,
  svc: Service,
  port: string | undefined,
  protocol: Protocol | undefined,
  output: string,
): ExplainResult {
  const src = resolveEndpoint(snapshot, from, '--from');
  const svcName = `${svc.namespace}/svc/${svc.name}`;
  const endpoints = serviceEndpoints(snapshot, svc);
  const ports =
    port !== undefined
      ? [servicePort(svc, port, protocol)]
      : svc.ports.filter((sp) => protocol === undefined || sp.protocol === protocol);
  const results = ports.map((sp) => ({
    sp,
    endpoints: endpoints.map((pod) => {
      const target = targetPortOn(sp, pod);
      if (target === undefined) return { pod, target };
      const e = explain(snapshot, { src, dst: { kind: 'pod', pod }, port: target, protocol: sp.protocol });
      return { pod, target, e };
    }),
  }));
  const denied =
    endpoints.length === 0 || results.some((r) => r.endpoints.some((x) => x.e?.verdict.allowed !== true));
  const spText = (sp: ServicePort) =>
    `${sp.name !== undefined ? `${sp.name} ` : ''}${sp.protocol}/${sp.port}`;
  if (output === 'json') {
    const json = {
      from: src.kind === 'pod' ? podKey(src.pod) : src.ip,
      service: { namespace: svc.namespace, name: svc.name },
      ports: results.map((r) => ({
        ...(r.sp.name !== undefined ? { name: r.sp.name } : {}),
        port: r.sp.port,
        protocol: r.sp.protocol,
        targetPort: r.sp.targetPort,
        endpoints: r.endpoints.map((x) => ({
          pod: podKey(x.pod),
          ...(x.target !== undefined ? { port: x.target } : {}),
          allowed: x.e?.verdict.allowed ?? false,
          ...(x.e !== undefined && port !== undefined ? { explanation: x.e } : {}),
          ...(x.target === undefined ? { reason: `no containerPort named ${String(r.sp.targetPort)}` } : {}),
        })),
      })),
    };
    return { text: `${JSON.stringify(json, null, 2)}\n`, denied };
  }
  const lines: string[] = [];
  if (endpoints.length === 0)
    lines.push(
      `Service ${svcName} selects no pod${svc.selector === undefined ? ' (no selector: its endpoints are managed elsewhere)' : ''}: nothing to reach`,
    );
  for (const r of results) {
    if (endpoints.length === 0) break;
    const open = r.endpoints.filter((x) => x.e?.verdict.allowed === true).length;
    lines.push(
      `Service ${svcName} port ${spText(r.sp)} -> targetPort ${String(r.sp.targetPort)}: ${open} of ${r.endpoints.length} endpoint(s) reachable`,
    );
    for (const x of r.endpoints) {
      const what =
        x.target === undefined
          ? `no containerPort named ${String(r.sp.targetPort)}: the Service sends it nothing`
          : x.e.verdict.allowed
            ? 'open'
            : 'denied';
      lines.push(
        `  ${podKey(x.pod)} ${x.target !== undefined ? `${r.sp.protocol}/${x.target}` : ''}: ${what}`.replace(
          / +:/,
          ':',
        ),
      );
    }
    if (port !== undefined) {
      for (const x of r.endpoints) if (x.e !== undefined) lines.push('', formatExplanation(x.e).trimEnd());
    }
  }
  if (port === undefined && endpoints.length > 0) lines.push(`(moat explain --port PORT tells why)`);
  return { text: `${lines.join('\n')}\n`, denied };
}

export function registerExplain(program: Command): void {
  const cmd = program.command('explain');
  addClusterOptions(cmd);
  cmd
    .description('why a flow is allowed or denied: policy by policy, rule by rule')
    .option('-f, --filename <path>', 'file, directory (recursive) or - for stdin; repeatable', collect, [])
    .option('--from <endpoint>', 'source: NAMESPACE/POD or an IP address')
    .option(
      '--to <endpoint>',
      'destination: NAMESPACE/POD, NAMESPACE/KIND/NAME, NAMESPACE/svc/NAME (every pod behind the Service, at its targetPort) or an IP address',
    )
    .option('--ignore <glob>', IGNORE_HELP, collectValues, [])
    .option(
      '--port <port>',
      "port number, or a name resolved against the destination pod's containerPorts (a Service's port or port name for svc/NAME); without it: every declared port, open or not",
    )
    .option('--protocol <protocol>', 'TCP, UDP or SCTP (default TCP; without --port: filters)')
    .option('--exit-code', 'exit 1 when the flow is denied (without --port: when no port is open)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts: ExplainArgs) => {
      const r = await runExplain(opts);
      process.stdout.write(r.text);
      if (opts.exitCode === true && r.denied) process.exitCode = 1;
    });
}

// `moat matrix -f PATH... [--port P] [--protocol TCP|UDP|SCTP] [-o table|json|csv|md|dot]`: whether every pod
// (with an IP) can reach every pod, per probed port. Without --port, every (containerPort, protocol)
// a pod declares is probed, sorted by port then protocol (TCP, UDP, SCTP). Flows between two pods use
// the family of the source's first IP (IPv4 unless a pod lists an IPv6 address first).
import { Option, type Command } from 'commander';
import { UsageError } from '../../errors.js';
import { PROTOCOLS, type Protocol } from '../../model/types.js';
import {
  computeMatrix,
  declaredProbes,
  matrixJsonChunks,
  matrixPods,
  matrixCsvChunks,
  matrixDotChunks,
  matrixMarkdownChunks,
  matrixTableChunks,
  matrixView,
  restrictMatrix,
  type Probe,
} from '../../analysis/matrix.js';
import {
  findServicePort,
  resolveService,
  serviceEndpoints,
  servicePort,
  targetPortOn,
} from '../../analysis/service.js';
import { podKey } from '../../model/types.js';
import { addClusterOptions, collectValues, IGNORE_HELP, loadInput, type InputArgs } from '../io.js';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export interface MatrixArgs extends InputArgs {
  readonly port?: string;
  readonly protocol?: string;
  readonly output: string;
  /** Sources and destinations in these namespaces only. */
  readonly namespace?: readonly string[];
  /** Sources (rows) / destinations (columns): NAMESPACE, NAMESPACE/NAME, globs with * allowed. */
  readonly from?: readonly string[];
  readonly to?: readonly string[];
  /** Table width in characters (default: the terminal's, when stdout is one). */
  readonly width?: string;
}

function parseWidth(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 20)
    throw new UsageError(`--width ${text}: a number of columns, at least 20`);
  return Number(text);
}

/** `--from`/`--to`/`--namespace` words: a namespace ("shop"), or a pod or workload, with * globs. */
function podFilter(words: readonly string[] | undefined): (pod: string) => boolean {
  if (words === undefined || words.length === 0) return () => true;
  const res = words.map((w) => {
    const re = new RegExp(`^${w.replace(/[.+^${}()|[\]\\?]/g, '\\$&').replace(/\*/g, '[^/]*')}$`);
    return { re, ns: !w.includes('/') };
  });
  return (pod) => res.some(({ re, ns }) => re.test(ns ? pod.slice(0, pod.indexOf('/')) : pod));
}

export function parseProtocol(text: string): Protocol {
  const p = text.toUpperCase();
  if (!(PROTOCOLS as readonly string[]).includes(p)) {
    throw new UsageError(`--protocol ${text}: must be one of ${PROTOCOLS.join(', ')}`);
  }
  return p as Protocol;
}

export function parseNumericPort(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw new UsageError(`--port ${text}: must be a port number between 1 and 65535`);
  }
  return Number(text);
}

/** The command's output, in chunks (large matrices do not fit in one string). */
export async function runMatrix(a: MatrixArgs): Promise<Iterable<string>> {
  const protocol = a.protocol !== undefined ? parseProtocol(a.protocol) : undefined;
  const snapshot = await loadInput('matrix', a);
  // `--to NS/svc/NAME`: the pods behind the Service, probed at the ports it sends to (its
  // targetPorts, a name looked up per pod); --port then names a Service port.
  const services = (a.to ?? []).flatMap((w) => {
    const svc = resolveService(snapshot, w, '--to');
    return svc !== undefined ? [{ word: w, svc }] : [];
  });
  const svcTargets = new Set<string>();
  let svcProbes: Probe[] | undefined;
  if (services.length > 0) {
    const seen = new Map<string, Probe>();
    // With several Services, --port is the port of those that have it (an error when none has).
    const having = services.filter(
      ({ svc }) =>
        a.port === undefined || services.length === 1 || findServicePort(svc, a.port, protocol) !== undefined,
    );
    if (having.length === 0) servicePort(services[0]!.svc, a.port!, protocol); // throws, naming it
    for (const { svc } of having) {
      const endpoints = serviceEndpoints(snapshot, svc);
      for (const p of endpoints) svcTargets.add(podKey(p));
      const sps =
        a.port !== undefined
          ? [servicePort(svc, a.port, protocol)]
          : svc.ports.filter((sp) => protocol === undefined || sp.protocol === protocol);
      for (const sp of sps) {
        for (const p of endpoints) {
          const t = targetPortOn(sp, p);
          if (t !== undefined) seen.set(`${sp.protocol}/${t}`, { port: t, protocol: sp.protocol });
        }
      }
    }
    svcProbes = [...seen.values()].sort(
      (x, y) => x.port - y.port || PROTOCOLS.indexOf(x.protocol) - PROTOCOLS.indexOf(y.protocol),
    );
  }
  const port = a.port !== undefined && services.length === 0 ? parseNumericPort(a.port) : undefined;
  let probes: Probe[] | undefined = svcProbes;
  if (port !== undefined) {
    // "--protocol defaults to TCP when --port is given".
    probes = [{ port, protocol: protocol ?? 'TCP' }];
  } else if (protocol !== undefined) {
    probes = declaredProbes(matrixPods(snapshot)).filter((p) => p.protocol === protocol);
  }
  const full = computeMatrix(snapshot, probes !== undefined ? { ports: probes } : {});
  const inNs = podFilter(a.namespace);
  const from = podFilter(a.from);
  const svcWords = new Set(services.map((x) => x.word));
  const otherTo = (a.to ?? []).filter((w) => !svcWords.has(w));
  const toWords = podFilter(otherTo);
  const to =
    services.length === 0 ? toWords : (p: string) => svcTargets.has(p) || (otherTo.length > 0 && toWords(p));
  const filtered = (a.namespace?.length ?? 0) + (a.from?.length ?? 0) + (a.to?.length ?? 0) > 0;
  const view = matrixView(
    full,
    (p) => inNs(p) && from(p),
    (p) => inNs(p) && to(p),
  );
  // JSON keeps its schema (a square matrix): a filtered view keeps the union of rows and columns.
  const result = filtered ? restrictMatrix(full, view) : full;
  const rView = filtered
    ? matrixView(
        result,
        (p) => inNs(p) && from(p),
        (p) => inNs(p) && to(p),
      )
    : undefined;
  if (a.output === 'json') return withNewline(matrixJsonChunks(result));
  const all = () => true;
  const textView = rView ?? matrixView(result, all, all);
  if (a.output === 'csv') return matrixCsvChunks(result, textView);
  if (a.output === 'dot') return matrixDotChunks(result, textView);
  if (a.output === 'md') return matrixMarkdownChunks(result, textView);
  if (result.probes.length === 0) {
    process.stderr.write('moat: no ports to probe: no pod declares a containerPort (use --port)\n');
  }
  // Width-aware on a terminal (or with --width); piped output keeps whole rows.
  const width =
    a.width !== undefined ? parseWidth(a.width) : process.stdout.isTTY ? process.stdout.columns : undefined;
  return matrixTableChunks(result, rView, width);
}

function* withNewline(chunks: Iterable<string>): Generator<string> {
  yield* chunks;
  yield '\n';
}

/** Writes chunks to stdout, waiting for it to drain when its buffer is full. */
async function writeAll(chunks: Iterable<string>): Promise<void> {
  for (const c of chunks) {
    if (!process.stdout.write(c)) await new Promise<void>((resolve) => process.stdout.once('drain', resolve));
  }
}

export function registerMatrix(program: Command): void {
  const cmd = program.command('matrix');
  addClusterOptions(cmd);
  cmd
    .description('whether every pod can reach every pod, per port (. allowed, X denied)')
    .option('-f, --filename <path>', 'file, directory (recursive) or - for stdin; repeatable', collect, [])
    .option('--ignore <glob>', IGNORE_HELP, collectValues, [])
    .option(
      '-n, --namespace <ns>',
      'sources and destinations in this namespace only; repeatable',
      collectValues,
      [],
    )
    .option(
      '--from <pods>',
      'sources (rows): NAMESPACE or NAMESPACE/NAME, * globs; repeatable',
      collectValues,
      [],
    )
    .option(
      '--to <pods>',
      'destinations (columns): as --from, or NAMESPACE/svc/NAME (the pods behind a Service, at its targetPorts); repeatable',
      collectValues,
      [],
    )
    .option(
      '--port <port>',
      "probe this port number only (default: every declared containerPort); with a Service in --to: the Service's port or port name",
    )
    .option('--protocol <protocol>', 'TCP, UDP or SCTP (default TCP with --port; otherwise filters)')
    .option('--width <n>', "table width: wider tables are cut into column groups (default: the terminal's)")
    .addOption(
      new Option('-o, --output <format>', 'output format')
        .choices(['table', 'json', 'csv', 'md', 'dot'])
        .default('table'),
    )
    .addHelpText(
      'after',
      '\nRows are sources, columns destinations. Workloads (Deployment, StatefulSet, ...) are rows as\n' +
        'NS/deploy/NAME, NS/sts/NAME-0, ...; pods without an IP take part (ipBlock rules then apply to\n' +
        "addresses only); hostNetwork pods are included (as their node's address). A flow uses the family\n" +
        "of the source's first IP (IPv4 unless a pod lists an IPv6 address first).",
    )
    .action(async (opts: MatrixArgs) => {
      await writeAll(await runMatrix(opts));
    });
}

// `moat agent`: the node agent. Watches the Kubernetes API and enforces this node's pods' policies
// in the kernel until SIGTERM/SIGINT.
import { Option, type Command } from 'commander';
import type { KubeConfig } from '@kubernetes/client-node';
import type { OnExit } from '../../agent/agent.js';
import type { LogLevel } from '../../agent/log.js';
import { parseListenAddress } from '../../agent/server.js';
import { DEFAULT_CNI_RESULTS_DIR } from '../../agent/attachments.js';
import {
  DEFAULT_POD_INTERFACES,
  DEFAULT_TABLE,
  localRunner,
  NetlinkConntrack,
  NftSession,
  netnsRunner,
} from '../../dataplane/index.js';
import { UsageError } from '../../errors.js';
import { addFlowLogOptions, parseFlowLogFlags, parseInterfaces, type FlowLogFlags } from '../io.js';

interface AgentFlags extends FlowLogFlags {
  flowLogFile?: string;
  flowLogFileSize: string;
  nodeName?: string;
  kubeconfig?: string;
  table: string;
  onExit: string;
  metricsAddr: string;
  healthAddr: string;
  logLevel: string;
  resync: string;
  discoveryInterval: string;
  driftInterval: string;
  coalesce: string;
  readyTimeout: string;
  conntrackCleanup: boolean;
  policeNodeEgress?: boolean;
  podInterfaces: string;
  cniResultsDir: string;
  netns?: string;
  backend: 'auto' | 'nftables' | 'iptables';
}

const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "250ms", "30s", "5m", "1h", "1m30s", "0" (off). */
export function parseDuration(flag: string, text: string): number {
  if (text === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let end = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * (UNITS[m[2] ?? ''] ?? 0);
    end = re.lastIndex;
  }
  if (end === 0 || end !== text.length) {
    throw new UsageError(`${flag} "${text}": expected a duration such as 500ms, 30s, 5m or 1h`);
  }
  return Math.round(total);
}

/** --kubeconfig PATH, else the in-cluster service account. */
export async function loadKubeConfig(path: string | undefined, env: NodeJS.ProcessEnv): Promise<KubeConfig> {
  // The client library is large: loaded only by the command that needs it.
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  try {
    if (path !== undefined) kc.loadFromFile(path);
    else if (env.KUBERNETES_SERVICE_HOST !== undefined && env.KUBERNETES_SERVICE_HOST !== '')
      kc.loadFromCluster();
    else {
      throw new UsageError(
        'agent: not running in a cluster (KUBERNETES_SERVICE_HOST is not set): give --kubeconfig PATH',
      );
    }
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(
      `agent: cannot load ${path ?? 'the in-cluster config'}: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  if (!kc.getCurrentCluster()) throw new UsageError(`agent: ${path ?? 'kubeconfig'}: no current cluster`);
  return kc;
}

export function registerAgent(program: Command): void {
  const cmd = program
    .command('agent')
    .description(
      'run the node agent: watch Pods, Namespaces, Nodes, NetworkPolicies and the admin tiers (where served) and enforce this node in nftables',
    )
    .option('--node-name <name>', 'this node (default: $NODE_NAME)')
    .option('--kubeconfig <path>', 'kubeconfig file (default: the in-cluster service account)')
    .option('--table <name>', 'nft table (family inet)', DEFAULT_TABLE)
    .addOption(
      new Option(
        '--on-exit <mode>',
        'on SIGTERM/SIGINT: keep the table (fail-static) or remove it (fail-open)',
      )
        .choices(['keep', 'remove'])
        .default('keep'),
    )
    .option('--metrics-addr <host:port>', 'Prometheus /metrics address', '0.0.0.0:9808')
    .option('--health-addr <host:port>', '/healthz and /readyz address', '0.0.0.0:9809')
    .addOption(
      new Option('--log-level <level>', 'log level')
        .choices(['debug', 'info', 'warn', 'error'])
        .default('info'),
    )
    .option('--resync <duration>', 'full resync period (0: off)', '5m')
    .option(
      '--discovery-interval <duration>',
      'how often API discovery looks for the admin-tier CRDs, so one installed later is watched (0: only at start)',
      '30s',
    )
    .option('--drift-interval <duration>', 'kernel drift check period (0: off)', '30s')
    .option('--coalesce <duration>', 'reconcile coalescing window', '10ms')
    .option('--ready-timeout <duration>', 'not ready once applies have failed for this long', '60s')
    .option('--no-conntrack-cleanup', 'do not delete conntrack entries of flows a change may deny')
    .option('--police-node-egress', 'police pod -> own node traffic (egress) instead of always allowing it')
    .option(
      '--pod-interfaces <globs>',
      'host-side pod interfaces, comma-separated names or prefix globs: every packet from one must carry ' +
        'its pod\'s address ("" turns the source check off)',
      DEFAULT_POD_INTERFACES.join(','),
    )
    .option(
      '--cni-results-dir <dir>',
      'the container runtime\'s CNI result cache: which bridge port is which pod ("": not read)',
      DEFAULT_CNI_RESULTS_DIR,
    )
    .addOption(new Option('--netns <name>', 'run nft in this network namespace (labs and tests)').hideHelp())
    .addOption(
      new Option(
        '--backend <name>',
        'enforce with nftables or iptables + ipset (auto: nftables if nft can serve)',
      )
        .choices(['auto', 'nftables', 'iptables'])
        .default('auto'),
    );
  addFlowLogOptions(cmd)
    .option(
      '--flow-log-file <path>',
      'write flow records to this file, one JSON line each (default: the log)',
    )
    .option(
      '--flow-log-file-size <MiB>',
      'rotate the flow log file at this size (3 rotated files kept)',
      '100',
    )
    .action(async (f: AgentFlags) => {
      const { flowLog, audit } = parseFlowLogFlags(f);
      const fileMiB = Number(f.flowLogFileSize);
      if (!Number.isFinite(fileMiB) || fileMiB <= 0) {
        throw new UsageError(
          `agent: --flow-log-file-size "${f.flowLogFileSize}": must be a positive number of MiB`,
        );
      }
      const nodeName = f.nodeName ?? process.env.NODE_NAME ?? '';
      const podInterfaces = parseInterfaces('--pod-interfaces', f.podInterfaces);
      if (nodeName === '') throw new UsageError('agent: no node name: give --node-name or set NODE_NAME');
      if (!TABLE_NAME.test(f.table)) {
        throw new UsageError(
          `agent: --table "${f.table}": must start with a letter or _ and contain only letters, digits, _ and -`,
        );
      }
      const kubeConfig = await loadKubeConfig(f.kubeconfig, process.env);
      const { Agent } = await import('../../agent/agent.js');
      const { createLog } = await import('../../agent/log.js');
      const log = createLog(f.logLevel as LogLevel);
      const runner = f.netns !== undefined ? netnsRunner(f.netns) : localRunner();
      let backend = f.backend;
      if (backend === 'auto') {
        const { quickBackend } = await import('../../dataplane/probe.js');
        const q = await quickBackend(runner);
        backend = q.backend;
        log.info('backend chosen', { backend, why: q.why });
      }
      const writer =
        backend === 'iptables'
          ? new (await import('../../dataplane/iptables-applier.js')).IptablesWriter(runner)
          : undefined;
      const agent = await Agent.start({
        kubeConfig,
        nodeName,
        table: f.table,
        onExit: f.onExit as OnExit,
        metricsAddr: parseListenAddress('--metrics-addr', f.metricsAddr),
        healthAddr: parseListenAddress('--health-addr', f.healthAddr),
        log,
        resyncMs: parseDuration('--resync', f.resync),
        discoveryIntervalMs: parseDuration('--discovery-interval', f.discoveryInterval),
        driftIntervalMs: parseDuration('--drift-interval', f.driftInterval),
        coalesceMs: parseDuration('--coalesce', f.coalesce),
        readyFailAfterMs: parseDuration('--ready-timeout', f.readyTimeout),
        conntrackCleanup: f.conntrackCleanup,
        policeNodeEgress: f.policeNodeEgress === true,
        podInterfaces,
        cniResultsDir: f.cniResultsDir,
        runner,
        conntrack: new NetlinkConntrack(f.netns !== undefined ? { netns: f.netns } : {}),
        ...(writer !== undefined
          ? { writer }
          : { nft: new NftSession(f.netns !== undefined ? { netns: f.netns } : {}) }),
        flowLog,
        audit,
        ...(f.flowLogFile !== undefined
          ? { flowLogFile: { path: f.flowLogFile, maxBytes: Math.round(fileMiB * 1024 * 1024) } }
          : {}),
        ...(f.netns !== undefined
          ? {
              openFlowReader: async (group: number) => {
                const { NetnsNflogReader } = await import('../../flowlog/nflog-netns.js');
                return NetnsNflogReader.open({ netns: f.netns!, group });
              },
            }
          : {}),
      });
      if (writer?.flavour !== undefined) log.info('iptables flavour', writer.flavour);
      const signal = await new Promise<NodeJS.Signals>((resolve) => {
        process.once('SIGTERM', () => resolve('SIGTERM'));
        process.once('SIGINT', () => resolve('SIGINT'));
      });
      log.info('signal received', { signal });
      await agent.stop();
      // Keep-alive sockets of the API client may hold the loop open; nothing is left to do.
      setTimeout(() => process.exit(process.exitCode ?? 0), 200).unref();
    });
}

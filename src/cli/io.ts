// Input for commands that read manifests: load, validate, refuse invalid input with the same
// messages as `moat validate`.
import type { Command } from 'commander';
import {
  checkInterfaceGlob,
  DEFAULT_FLOW_LOG,
  FLOW_LOG_MODES,
  type FlowLogMode,
  type FlowLogOptions,
} from '../dataplane/model.js';
import { InputError, UsageError } from '../errors.js';
import { loadPaths, type LoadResult } from '../model/load.js';
import type { Snapshot } from '../model/types.js';

export async function loadSnapshot(
  paths: readonly string[],
  ignore: readonly string[] = [],
): Promise<Snapshot> {
  const res = await loadPaths(paths, { ignore });
  for (const note of res.notes) process.stderr.write(`moat: ${note}\n`);
  if (res.problems.length > 0) throw new InputError(res.problems);
  return res.snapshot;
}

/** Where an analysis command reads: files (`-f`) or a live cluster (`--kubeconfig`, `--context`). */
export interface InputArgs {
  readonly filename: readonly string[];
  readonly ignore?: readonly string[];
  readonly kubeconfig?: string;
  readonly context?: string;
}

/** The load result of the files or of the cluster (notes not printed, problems not thrown). */
export async function loadInputResult(command: string, a: InputArgs): Promise<LoadResult> {
  if (a.kubeconfig !== undefined) {
    if (a.filename.length > 0) throw new UsageError(`${command}: give -f PATH or --kubeconfig, not both`);
    const { loadCluster } = await import('./cluster.js');
    return loadCluster({ kubeconfig: a.kubeconfig, context: a.context });
  }
  if (a.context !== undefined) throw new UsageError(`${command}: --context needs --kubeconfig`);
  if (a.filename.length === 0)
    throw new UsageError(
      `${command}: at least one -f PATH (use -f - for stdin) or --kubeconfig PATH is required`,
    );
  return loadPaths(a.filename, { ignore: a.ignore ?? [] });
}

/** loadInputResult, with notes on stderr and invalid input refused as `moat validate` does. */
export async function loadInput(command: string, a: InputArgs): Promise<Snapshot> {
  const res = await loadInputResult(command, a);
  for (const note of res.notes) process.stderr.write(`moat: ${note}\n`);
  if (res.problems.length > 0) throw new InputError(res.problems);
  return res.snapshot;
}

/** `--kubeconfig` and `--context`, the same on every analysis command. */
export function addClusterOptions(cmd: Command): Command {
  return cmd
    .option('--kubeconfig <path>', 'read the live cluster this kubeconfig names (list only) instead of files')
    .option('--context <name>', 'the kubeconfig context to use (default: its current context)');
}

/** "veth*,cali*": interface names or prefix globs; "" turns the source check off. */
export function parseInterfaces(flag: string, text: string): string[] {
  if (text.trim() === '') return [];
  return text.split(',').map((g) => {
    const bad = checkInterfaceGlob(g.trim());
    if (bad !== undefined) throw new UsageError(`${flag}: ${bad}`);
    return g.trim();
  });
}

export interface FlowLogFlags {
  /** The mode: `--flow-log MODE` (agent, compile) or `--flow-log-mode MODE` (lab, where --flow-log is a file). */
  flowLog?: string;
  flowLogMode?: string;
  flowLogGroup: string;
  flowLogRate: string;
  flowLogBurst: string;
  audit?: boolean;
}

/** The flow-log flags, the same on `agent`, `compile` and `lab` (there the mode is --flow-log-mode). */
export function addFlowLogOptions(
  cmd: Command,
  modeFlag: '--flow-log' | '--flow-log-mode' = '--flow-log',
): Command {
  return cmd
    .option(
      `${modeFlag} <mode>`,
      'log the first packet of each connection: off, denied, policy (every verdict a policy decided), all',
      DEFAULT_FLOW_LOG.mode,
    )
    .option('--flow-log-group <n>', 'NFLOG group the ruleset logs to', String(DEFAULT_FLOW_LOG.group))
    .option(
      '--flow-log-rate <n>',
      'flow records per second for the node (beyond: counted, not logged)',
      String(DEFAULT_FLOW_LOG.rate),
    )
    .option(
      '--flow-log-burst <n>',
      'records allowed above the rate in a burst',
      String(DEFAULT_FLOW_LOG.burst),
    )
    .option('--audit', 'audit mode for every policy: would-be drops are accepted and logged as audit');
}

function intFlag(flag: string, text: string, min: number, max: number): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`${flag} "${text}": must be an integer from ${min} to ${max}`);
  }
  return n;
}

export function parseFlowLogFlags(f: FlowLogFlags): { flowLog: FlowLogOptions; audit: boolean } {
  const [flag, mode] =
    f.flowLogMode !== undefined
      ? ['--flow-log-mode', f.flowLogMode]
      : ['--flow-log', f.flowLog ?? DEFAULT_FLOW_LOG.mode];
  if (!(FLOW_LOG_MODES as readonly string[]).includes(mode)) {
    throw new UsageError(`${flag} "${mode}": must be one of ${FLOW_LOG_MODES.join(', ')}`);
  }
  return {
    flowLog: {
      mode: mode as FlowLogMode,
      group: intFlag('--flow-log-group', f.flowLogGroup, 0, 65535),
      rate: intFlag('--flow-log-rate', f.flowLogRate, 1, 10_000_000),
      burst: intFlag('--flow-log-burst', f.flowLogBurst, 1, 10_000_000),
    },
    audit: f.audit === true,
  };
}

export const IGNORE_HELP =
  'skip files and directories matching GLOB (*, ?, **; a name without / matches any path segment); repeatable';

export function collectValues(value: string, previous: string[]): string[] {
  return [...previous, value];
}

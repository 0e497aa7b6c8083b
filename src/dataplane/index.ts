// The in-kernel nftables dataplane: compile (pure), render (pure), apply (I/O through a runner).
export type {
  CounterKind,
  CounterMeta,
  DataplaneOptions,
  GuardReason,
  NftBaseHook,
  NftChain,
  NftCounter,
  NftElement,
  NftHook,
  NftSet,
  Ruleset,
} from './model.js';
export { checkInterfaceGlob, DEFAULT_POD_INTERFACES, DEFAULT_TABLE } from './model.js';
export { compile, EGRESS_PRIORITY, INGRESS_PRIORITY, NODE_EGRESS_PRIORITY } from './compile.js';
export { renderNft } from './render.js';
export type { CommandResult, CommandRunner } from './runner.js';
export { localRunner, netnsRunner } from './runner.js';
export type { ConntrackTarget, Transaction } from './diff.js';
export { conntrackTargets, diffRulesets } from './diff.js';
export type { CtDeletion, CtEntry, CtPlan, CtTuple } from './conntrack.js';
export { parseConntrackList, planConntrackCleanup } from './conntrack.js';
export type { ApplyResult, DriftResult, KernelTable } from './applier.js';
export { compareKernel, DataplaneApplier, parseNftJson } from './applier.js';
export type { DataplaneApplierDeps } from './applier.js';
export type { ConntrackClient, NetlinkConntrackOptions } from './ct-client.js';
export { NetlinkConntrack } from './ct-client.js';
export type { NftBatcher, NftSessionOptions } from './nft-session.js';
export { NftSession, NftSessionError } from './nft-session.js';
export type { Backend, BackendChoice, BackendVerdict, Check, HostReport } from './probe.js';
export { chooseBackend, probeHost } from './probe.js';
/** The backends this version can run (the probe also judges the ones still to come). */
export const IMPLEMENTED_BACKENDS: readonly import('./probe.js').Backend[] = ['nftables', 'iptables'];

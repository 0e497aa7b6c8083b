// Shared by the agent tests: a recording applier, polling, and a packet check on the ruleset.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { AgentApplier } from '../../src/agent/agent.js';
import type { Log, LogFields } from '../../src/agent/log.js';
import type { ApplyResult, DriftResult, Ruleset } from '../../src/dataplane/index.js';
import { IncrementalCompiler } from '../../src/dataplane/compile.js';
import { simulate } from '../../src/dataplane/simulate.js';
import type { Snapshot } from '../../src/model/types.js';
import type { FakeApiServer } from './fake-apiserver.js';

/** Compiles like DataplaneApplier and remembers every snapshot; no kernel involved. */
export class RecordingApplier implements AgentApplier {
  readonly applied: Snapshot[] = [];
  kernelView: Ruleset | undefined;
  removed = 0;
  private readonly compiler: IncrementalCompiler;
  constructor(readonly nodeName: string) {
    this.compiler = new IncrementalCompiler({ table: 'moat', nodeName });
  }

  get conflicts(): ReadonlySet<string> {
    return this.compiler.conflictSet;
  }

  apply(s: Snapshot): Promise<ApplyResult> {
    const ruleset = this.compiler.compile(s);
    this.kernelView = ruleset;
    this.applied.push(s);
    return Promise.resolve({ mode: 'full', commands: 1, conntrackDeleted: [], conntrackErrors: [], ruleset });
  }

  checkDrift(): Promise<DriftResult> {
    return Promise.resolve({ drifted: false, differences: [], repaired: false });
  }

  remove(): Promise<void> {
    this.removed++;
    this.kernelView = undefined;
    return Promise.resolve();
  }

  get last(): Snapshot | undefined {
    return this.applied[this.applied.length - 1];
  }
}

/** Would a new TCP connection saddr -> daddr:port pass the ruleset (forwarded between pods)? */
export function passes(rs: Ruleset | undefined, saddr: string, daddr: string, port: number): boolean {
  if (!rs) return true; // no table: nothing is policed
  return (
    simulate(rs, { family: 4, saddr, daddr, l4proto: 'tcp', dport: port, hook: 'postrouting' }).verdict ===
    'accept'
  );
}

/** Polls until `cond` holds; fails with `what` after `timeoutMs`. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Log lines kept in memory. */
export class MemoryLog implements Log {
  readonly lines: { level: string; msg: string; fields: LogFields }[] = [];
  private at =
    (level: string) =>
    (msg: string, fields: LogFields = {}) => {
      this.lines.push({ level, msg, fields });
    };
  debug = this.at('debug');
  info = this.at('info');
  warn = this.at('warn');
  error = this.at('error');
  text(): string {
    return this.lines.map((l) => `${l.level} ${l.msg} ${JSON.stringify(l.fields)}`).join('\n');
  }
}

/** A temp dir with the server's kubeconfig; `done` removes it. */
export async function kubeconfigFor(
  server: FakeApiServer,
): Promise<{ kc: KubeConfig; path: string; done: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'moat-agent-test-'));
  const path = await server.writeKubeconfig(join(dir, 'kubeconfig'));
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return { kc, path, done: () => rm(dir, { recursive: true, force: true }) };
}

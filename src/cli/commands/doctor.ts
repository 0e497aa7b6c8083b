// `moat doctor [-o text|json] [--backend auto|nftables|iptables]`: what this host can enforce with,
// what is missing and how to get it, and which backend `--backend auto` picks. Exit 0 when moat can
// enforce here, 1 when it cannot. Changes nothing on the host (src/dataplane/probe.ts).
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { Option, type Command } from 'commander';
import { IMPLEMENTED_BACKENDS } from '../../dataplane/index.js';
import {
  chooseBackend,
  probeHost,
  type BackendChoice,
  type BackendVerdict,
  type Check,
  type HostReport,
} from '../../dataplane/probe.js';
import { localRunner } from '../../dataplane/runner.js';

export interface DoctorResult {
  readonly report: HostReport;
  readonly verdict: BackendVerdict;
  /** The backend moat would run with; undefined when none can. */
  readonly backend?: string;
  readonly ok: boolean;
}

/** The verdict, and whether this version of moat has the backend it picks. */
export function doctorResult(report: HostReport, wanted: BackendChoice): DoctorResult {
  const verdict = chooseBackend(report, wanted);
  const ok = verdict.chosen !== undefined && IMPLEMENTED_BACKENDS.includes(verdict.chosen);
  return { report, verdict, ...(ok ? { backend: verdict.chosen } : {}), ok };
}

const GROUPS: readonly Check['group'][] = ['nftables', 'iptables', 'ipset', 'conntrack', 'host'];

export function formatDoctor(r: DoctorResult): string {
  const out: string[] = [];
  out.push(`kernel ${r.report.kernel}; scratch namespace: ${r.report.scratch.detail}`);
  for (const g of GROUPS) {
    const checks = r.report.checks.filter((c) => c.group === g);
    if (checks.length === 0) continue;
    const mode =
      g === 'iptables' && r.report.iptablesMode !== undefined
        ? ` (host uses iptables-${r.report.iptablesMode.mode}: ${r.report.iptablesMode.why})`
        : '';
    out.push('', `${g}${mode}`);
    for (const c of checks) {
      const mark = c.ok ? 'ok     ' : c.requiredBy !== undefined ? 'MISSING' : 'no     ';
      const need = c.requiredBy !== undefined ? '' : ' (optional)';
      out.push(`  ${mark} ${c.what}${need}: ${c.detail}`);
      if (!c.ok && c.fix !== undefined) out.push(`          fix: ${c.fix}`);
    }
  }
  out.push('');
  const v = r.verdict;
  if (v.chosen === undefined) out.push(`backend: none. ${v.why}`);
  else if (!r.ok)
    out.push(
      `backend: ${v.chosen} (${v.why}), but this version of moat has only: ${IMPLEMENTED_BACKENDS.join(', ')}`,
    );
  else out.push(`backend: ${v.chosen}. ${v.why}`);
  out.push(r.ok ? 'moat can enforce on this host.' : 'moat cannot enforce on this host.');
  return `${out.join('\n')}\n`;
}

function readProc(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description(
      'probe this host (in a scratch network namespace, changing nothing) for what moat needs; exit 1 when it cannot enforce here',
    )
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .addOption(
      new Option('--backend <name>', 'the backend to judge')
        .choices(['auto', 'nftables', 'iptables'])
        .default('auto'),
    )
    .action(async (opts: { output: 'text' | 'json'; backend: BackendChoice }) => {
      const report = await probeHost({
        runner: localRunner(),
        scratch: `moat-doctor-${process.pid}`,
        kernel: release(),
        readFile: readProc,
      });
      const r = doctorResult(report, opts.backend);
      process.stdout.write(opts.output === 'json' ? `${JSON.stringify(r, null, 2)}\n` : formatDoctor(r));
      if (!r.ok) process.exitCode = 1;
    });
}

// Test support: what is in a lab node's kernel against what moat would compile for it.
import { compareKernel, compile, localRunner, parseNftJson } from '../../src/dataplane/index.js';
import { DEFAULT_FLOW_LOG, type FlowLogOptions } from '../../src/dataplane/model.js';
import type { Lab } from '../../src/lab/lab.js';
import type { Snapshot } from '../../src/model/types.js';

/**
 * Differences between the lab node's `inet moat` table and the ruleset compiled from `want`, with
 * the flow logs `moat agent` has by default (its agent runs from the command line).
 */
export async function kernelDiff(
  lab: Lab,
  want: Snapshot,
  flowLog: FlowLogOptions = DEFAULT_FLOW_LOG,
): Promise<string[]> {
  const rs = compile(want, { table: 'moat', nodeName: lab.nodeName, flowLog });
  const res = await localRunner().run([
    'ip',
    'netns',
    'exec',
    lab.nodeNetns,
    'nft',
    '-j',
    'list',
    'table',
    'inet',
    'moat',
  ]);
  if (res.code !== 0) return ['table inet moat: missing'];
  return compareKernel(rs, parseNftJson(res.stdout));
}

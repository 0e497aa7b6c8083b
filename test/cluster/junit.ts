// Counts the specs of a ginkgo JUnit report whose name matches a pattern: passed, failed, skipped
// (a report lists every spec of e2e.test, the unfocused ones as skipped: only the matching count).
//   node dist/test/cluster/junit.js REPORT.xml [REGEX=Netpol] [--list-failed]
import { readFileSync } from 'node:fs';

export interface Counts {
  passed: number;
  failed: number;
  skipped: number;
  failedNames: string[];
}

function unescape(s: string): string {
  return s
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n)))
    .replace(/&#x([0-9a-f]+);/gi, (_, n: string) => String.fromCharCode(parseInt(n, 16)))
    .replace(/&amp;/g, '&');
}

export function countSpecs(xml: string, pattern: RegExp): Counts {
  const out: Counts = { passed: 0, failed: 0, skipped: 0, failedNames: [] };
  const re = /<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g;
  for (let m = re.exec(xml); m !== null; m = re.exec(xml)) {
    const attrs = m[1] ?? '';
    const body = m[3] ?? '';
    const name = unescape(/\bname="([^"]*)"/.exec(attrs)?.[1] ?? '');
    if (!pattern.test(name)) continue;
    const status = /\bstatus="([^"]*)"/.exec(attrs)?.[1];
    if (/<skipped\b/.test(body) || status === 'skipped' || status === 'pending') out.skipped++;
    else if (/<(failure|error)\b/.test(body) || status === 'failed' || status === 'panicked') {
      out.failed++;
      out.failedNames.push(name);
    } else out.passed++;
  }
  return out;
}

if (process.argv[1]?.endsWith('junit.js')) {
  const [file, pattern = 'Netpol', flag] = process.argv.slice(2);
  if (file === undefined) {
    process.stderr.write('usage: junit.js REPORT.xml [REGEX] [--list-failed]\n');
    process.exit(2);
  }
  const c = countSpecs(readFileSync(file, 'utf8'), new RegExp(pattern));
  process.stdout.write(`passed=${c.passed} failed=${c.failed} skipped=${c.skipped}\n`);
  if (flag === '--list-failed') for (const n of c.failedNames) process.stdout.write(`FAILED ${n}\n`);
}

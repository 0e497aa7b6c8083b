import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  adminRule,
  aport,
  cnp,
  networksPeer,
  ns,
  nsSubject,
  pod,
  podSubject,
  sel,
  snapshot,
} from '../model/build.js';
import type { AdminPolicy, AdminRule, Pod } from '../model/types.js';
import { atLeast, formatFinding, lint } from './lint.js';

const deny = [adminRule('Deny', [nsSubject()])];
const A = (name: string, priority: number, o: Partial<AdminPolicy> = {}): AdminPolicy => ({
  ...cnp(name, { priority, ingress: deny }),
  ...o,
});
const pods: Pod[] = [pod('x', 'web', { labels: { app: 'web' } }), pod('y', 'db', { labels: { app: 'db' } })];

describe('lint: admin-priority-tie', () => {
  const cases: { name: string; policies: AdminPolicy[]; pods?: Pod[]; want: string[] }[] = [
    { name: 'different priorities', policies: [A('a', 1), A('b', 2)], pods, want: [] },
    { name: 'same priority, shared subject', policies: [A('a', 1), A('b', 1)], pods, want: ['b~a'] },
    {
      name: 'same priority, disjoint subjects',
      policies: [
        A('a', 1, { subject: podSubject(sel({ app: 'web' })) }),
        A('b', 1, { subject: podSubject(sel({ app: 'db' })) }),
      ],
      pods,
      want: [],
    },
    {
      name: 'same priority, no pods in the input: may overlap',
      policies: [
        A('a', 1, { subject: podSubject(sel({ app: 'web' })) }),
        A('b', 1, { subject: podSubject(sel({ app: 'db' })) }),
      ],
      want: ['b~a'],
    },
    {
      name: 'same priority, other tier',
      policies: [A('a', 1), A('b', 1, { tier: 'Baseline' })],
      pods,
      want: [],
    },
    {
      name: 'ClusterNetworkPolicy before AdminNetworkPolicy: the ANP is the object',
      policies: [A('z', 3), A('a', 3, { kind: 'AdminNetworkPolicy' })],
      pods,
      want: ['a~z'],
    },
    {
      name: 'hostNetwork pods are no shared subject',
      policies: [A('a', 1), A('b', 1)],
      pods: [pod('x', 'h', { hostNetwork: true })],
      want: [],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const f = lint(
        snapshot({ namespaces: [ns('x'), ns('y')], pods: c.pods ?? [], adminPolicies: c.policies }),
      );
      const got = f.filter((x) => x.check === 'admin-priority-tie');
      assert.deepEqual(
        got.map((x) => `${x.object.name}~${x.related.map((r) => r.name).join(',')}`),
        c.want,
      );
      for (const x of got) {
        assert.equal(x.field, 'spec.priority');
        assert.equal(x.severity, 'warning');
        assert.match(x.fix, /priority other than/);
      }
    });
  }
});

describe('lint: admin-domain-names', () => {
  it('warns on an Accept, informs on a Deny, names the field', () => {
    const p = cnp('dns', {
      egress: [
        adminRule('Deny', [networksPeer('10.0.0.0/8')]),
        adminRule('Accept', [{ kind: 'domainNames', domainNames: ['example.com'] }], undefined, 'web'),
        adminRule('Deny', [networksPeer('1.1.1.1/32'), { kind: 'domainNames', domainNames: ['*.evil.io'] }]),
      ],
    });
    const f = lint(snapshot({ adminPolicies: [p] }));
    assert.deepEqual(
      f.map((x) => [x.severity, x.field]),
      [
        ['warning', 'spec.egress[1].to[0].domainNames'],
        ['info', 'spec.egress[2].to[1].domainNames'],
      ],
    );
    assert.match(f[0]!.message, /egress rule 1 \(web\): domainNames \(example\.com\) are not enforced/);
    assert.equal(atLeast(f[0]!, 'warning'), true);
    assert.equal(atLeast(f[1]!, 'warning'), false);
    assert.equal(atLeast(f[1]!, 'info'), true);
    assert.match(
      formatFinding(f[0]!),
      /^warning admin-domain-names: ClusterNetworkPolicy dns: spec\.egress\[1\]/,
    );
  });

  it('finds nothing in a cluster without admin policies', () => {
    assert.deepEqual(lint(snapshot({ pods })), []);
  });
});

describe('lint: rule-shadowed', () => {
  const web = podSubject(sel({ app: 'web' }), sel({ team: 'a' }));
  const cases: { name: string; rules: AdminRule[]; want: string[] }[] = [
    {
      name: 'a Deny from every namespace before an Accept from some pods',
      rules: [adminRule('Deny', [nsSubject()]), adminRule('Accept', [web])],
      want: ['spec.ingress[1] Accept'],
    },
    {
      name: 'the narrower rule first',
      rules: [adminRule('Accept', [web]), adminRule('Deny', [nsSubject()])],
      want: [],
    },
    {
      name: 'the same peers, the earlier rule on all ports',
      rules: [adminRule('Pass', [web]), adminRule('Deny', [web], [aport(80)])],
      want: ['spec.ingress[1] Deny'],
    },
    {
      name: 'the earlier rule on fewer ports',
      rules: [adminRule('Pass', [web], [aport(80)]), adminRule('Deny', [web], [aport(80), aport(443)])],
      want: [],
    },
    {
      name: 'a port range covers a port of the same protocol only',
      rules: [
        adminRule('Deny', [networksPeer('10.0.0.0/8')], [aport(1, 'TCP', 1024)]),
        adminRule('Accept', [networksPeer('10.1.0.0/16')], [aport(443)]),
        adminRule('Accept', [networksPeer('10.1.0.0/16')], [aport(443, 'UDP')]),
        adminRule('Accept', [networksPeer('11.0.0.0/16')], [aport(443)]),
      ],
      want: ['spec.ingress[1] Accept'],
    },
    {
      name: 'a selector with more terms is narrower',
      rules: [
        adminRule('Deny', [nsSubject(sel({ team: 'a', env: 'prod' }))]),
        adminRule('Accept', [nsSubject(sel({ team: 'a' }))]),
      ],
      want: [],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const f = lint(snapshot({ adminPolicies: [cnp('p', { ingress: c.rules })] })).filter(
        (x) => x.check === 'rule-shadowed',
      );
      assert.deepEqual(
        f.map((x) => `${x.field} ${c.rules[Number(/\[(\d+)\]$/.exec(x.field)?.[1])]!.action}`),
        c.want,
      );
      for (const x of f) assert.equal(x.severity, 'warning');
    });
  }
});

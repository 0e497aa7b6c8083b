// Workloads (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, ReplicationController):
// their pod templates become pods for analysis, named after the workload (docs/inputs.md). Only
// what analysis uses is projected and checked: the selector against the template's labels (as
// ValidateDeploymentSpec and its siblings do), the template's labels and its PodSpec's ports.
import type { MapTree } from './parseYaml.js';
import { matchesSelector } from './selector.js';
import type { Labels, Pod, WorkloadKind } from './types.js';
import {
  child,
  controllerOf,
  decodeLabels,
  decodePodSpec,
  decodeSelector,
  expectInt,
  expectMap,
  get,
  msg,
  type Meta,
  type PodEntry,
  type Reporter,
} from './validate.js';

/** kubectl's short names (`kubectl get deploy/web`); a workload pod is `SHORT/NAME`. */
export const WORKLOAD_SHORT: Readonly<Record<WorkloadKind, string>> = {
  Deployment: 'deploy',
  StatefulSet: 'sts',
  DaemonSet: 'ds',
  ReplicaSet: 'rs',
  Job: 'job',
  CronJob: 'cronjob',
  ReplicationController: 'rc',
};

/** A decoded workload: its pods, and what decides whether they stand for it (load.ts). */
export interface WorkloadEntry {
  readonly kind: WorkloadKind;
  /** "Kind/namespace/name", as a controller ownerReference names it. */
  readonly key: string;
  /** Its own controller (a Deployment's ReplicaSet, a CronJob's Job), if any. */
  readonly owner?: string;
  /** No pods: spec.replicas is 0. */
  readonly scaledToZero: boolean;
  readonly pods: readonly PodEntry[];
}

/** A StatefulSet's replicas are expanded; more than this many is refused as implausible input. */
export const MAX_REPLICAS = 1000;

function replicas(r: Reporter, spec: MapTree | undefined): number {
  const t = get(spec, 'replicas');
  const n = expectInt(r, 'spec.replicas', t);
  if (n !== undefined && n < 0)
    r.add('spec.replicas', t?.line ?? 0, msg.invalid(n, 'must be greater than or equal to 0'));
  return n === undefined || n < 0 ? 1 : n;
}

export function decodeWorkload(
  kind: WorkloadKind,
): (r: Reporter, root: MapTree, meta: Meta, file: string) => WorkloadEntry {
  return (r, root, meta, file) => {
    const spec = expectMap(r, 'spec', get(root, 'spec'));
    // CronJob: spec.jobTemplate.spec.template; the others: spec.template.
    let templatePath = 'spec.template';
    let holder = spec;
    if (kind === 'CronJob') {
      const jt = expectMap(r, 'spec.jobTemplate', get(spec, 'jobTemplate'));
      if (jt === undefined) r.add('spec.jobTemplate', spec?.line ?? root.line, msg.required());
      holder = expectMap(r, 'spec.jobTemplate.spec', get(jt, 'spec'));
      templatePath = 'spec.jobTemplate.spec.template';
    }
    const tplTree = get(holder, 'template');
    const tpl = expectMap(r, templatePath, tplTree);
    // ReplicationController's template is optional ("*PodTemplateSpec"); the others require it.
    if (tplTree === undefined && kind !== 'ReplicationController')
      r.add(templatePath, holder?.line ?? root.line, msg.required());
    const tplMeta = expectMap(r, child(templatePath, 'metadata'), get(tpl, 'metadata'));
    const labelsPath = child(templatePath, 'metadata.labels');
    const labelsTree = get(tplMeta, 'labels');
    const labels = decodeLabels(r, labelsPath, labelsTree);
    const podSpecPath = child(templatePath, 'spec');
    const podSpec = expectMap(r, podSpecPath, get(tpl, 'spec'));
    const part =
      tpl !== undefined
        ? decodePodSpec(r, podSpecPath, podSpec, tpl.line)
        : { hostNetwork: false, ports: [] };
    if (tpl !== undefined) checkSelector(r, kind, spec, labels, labelsTree?.line ?? tpl.line);

    let count = 1;
    if (
      kind === 'Deployment' ||
      kind === 'StatefulSet' ||
      kind === 'ReplicaSet' ||
      kind === 'ReplicationController'
    )
      count = replicas(r, spec);
    if (kind === 'StatefulSet' && count > MAX_REPLICAS)
      r.add(
        'spec.replicas',
        get(spec, 'replicas')?.line ?? root.line,
        msg.invalid(count, `moat expands at most ${MAX_REPLICAS} replicas`),
      );
    const short = WORKLOAD_SHORT[kind];
    const make = (name: string, extra: Labels): PodEntry => {
      const pod: Pod = {
        namespace: meta.namespace,
        name: `${short}/${name}`,
        labels: { ...labels, ...extra },
        hostNetwork: part.hostNetwork,
        ips: [],
        ports: part.ports,
        workload: { kind, name: meta.name },
        ...(part.nodeName !== undefined ? { nodeName: part.nodeName } : {}),
        origin: { file, line: root.line },
      };
      return { pod, hostIPs: [], finished: false, terminating: meta.terminating };
    };
    const pods: PodEntry[] = [];
    if (tpl !== undefined && count > 0) {
      if (kind === 'StatefulSet') {
        // "Each Pod in a StatefulSet derives its hostname from the name of the StatefulSet and the
        // ordinal of the Pod"; "the StatefulSet controller ... adds a label,
        // statefulset.kubernetes.io/pod-name, that is set to the name of the Pod", and
        // apps.kubernetes.io/pod-index, the ordinal. Ordinals start at spec.ordinals.start (0).
        const ord = expectMap(r, 'spec.ordinals', get(spec, 'ordinals'));
        const start = expectInt(r, 'spec.ordinals.start', get(ord, 'start')) ?? 0;
        for (let i = 0; i < Math.min(count, MAX_REPLICAS); i++) {
          const podName = `${meta.name}-${start + i}`;
          pods.push(
            make(podName, {
              'statefulset.kubernetes.io/pod-name': podName,
              'apps.kubernetes.io/pod-index': String(start + i),
            }),
          );
        }
      } else if (kind === 'Job') {
        // The Job controller labels its pods with the job's name ("batch.kubernetes.io/job-name",
        // and the legacy "job-name").
        pods.push(make(meta.name, { 'batch.kubernetes.io/job-name': meta.name, 'job-name': meta.name }));
      } else {
        pods.push(make(meta.name, {}));
      }
    }
    const owner = controllerOf(root, meta.namespace);
    return {
      kind,
      key: `${kind}/${meta.namespace}/${meta.name}`,
      ...(owner !== undefined ? { owner } : {}),
      scaledToZero: tpl !== undefined && count === 0,
      pods,
    };
  };
}

/**
 * apps/v1: spec.selector is required and "`selector` does not match template `labels`" is an error.
 * Job: the selector is optional (generated). ReplicationController: a map, "If empty, defaulted to
 * labels on Pod template". CronJob: none.
 */
function checkSelector(
  r: Reporter,
  kind: WorkloadKind,
  spec: MapTree | undefined,
  labels: Labels,
  labelsLine: number,
): void {
  if (kind === 'CronJob') return;
  const t = get(spec, 'selector');
  if (kind === 'ReplicationController') {
    const m = decodeLabels(r, 'spec.selector', t);
    const ok = Object.entries(m).every(([k, v]) => labels[k] === v);
    if (!ok)
      r.add(
        'spec.template.metadata.labels',
        labelsLine,
        msg.invalid(labels, '`selector` does not match template `labels`'),
      );
    return;
  }
  if (t === undefined) {
    if (kind !== 'Job') r.add('spec.selector', spec?.line ?? labelsLine, msg.required());
    return;
  }
  const before = r.problems.length;
  const sel = decodeSelector(r, 'spec.selector', t);
  if (sel === undefined || r.problems.length !== before) return;
  if (kind !== 'Job' && Object.keys(sel.matchLabels).length + sel.matchExpressions.length === 0) {
    r.add('spec.selector', t.line, msg.invalid(sel, `empty selector is invalid for ${kind.toLowerCase()}`));
    return;
  }
  if (!matchesSelector(sel, labels))
    r.add(
      'spec.template.metadata.labels',
      labelsLine,
      msg.invalid(labels, '`selector` does not match template `labels`'),
    );
}

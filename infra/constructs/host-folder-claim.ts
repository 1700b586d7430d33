import { JsonPatch, type Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { perNamespace } from '../names.ts';

// A PersistentVolumeClaim bound to a PersistentVolume on a folder of the node (on kind, a host
// folder mounted into the node by kind-config.yaml's extraMounts). The volume is reserved for
// its claim (claimRef) and kept when the claim goes (Retain): deleting the cluster or the
// manifests never deletes the folder's files.

export interface HostFolderClaimProps {
  /** The claim's name; the PersistentVolume's outside the default namespace has the namespace appended (perNamespace). */
  name: string;
  /** The claim's namespace (the volume is reserved for it). */
  namespace: string;
  labels: Record<string, string>;
  /** The folder on the node (outside the default namespace, with the namespace appended). */
  nodePath: string;
  storage: Size;
}

/** A class name no provisioner serves: the claim binds only to its own volume. */
const HOST_FOLDER_STORAGE_CLASS = 'analytics-host-folder';

export class HostFolderClaim extends Construct {
  readonly claim: kplus.PersistentVolumeClaim;

  constructor(scope: Construct, id: string, props: HostFolderClaimProps) {
    super(scope, id);
    const quantity = kplus.k8s.Quantity.fromString(`${props.storage.toGibibytes()}Gi`);
    const volumeName = perNamespace(props.name, props.namespace);
    const volume = new kplus.k8s.KubePersistentVolume(this, 'volume', {
      metadata: { name: volumeName, labels: props.labels },
      spec: {
        capacity: { storage: quantity },
        accessModes: ['ReadWriteMany'],
        persistentVolumeReclaimPolicy: 'Retain',
        storageClassName: HOST_FOLDER_STORAGE_CLASS,
        hostPath: { path: perNamespace(props.nodePath, props.namespace), type: 'DirectoryOrCreate' },
        claimRef: { namespace: props.namespace, name: props.name },
      },
    });
    // Cluster-scoped: without the chart's default namespace.
    volume.addJsonPatch(JsonPatch.remove('/metadata/namespace'));
    this.claim = new kplus.PersistentVolumeClaim(this, 'claim', {
      metadata: { name: props.name, labels: props.labels },
      accessModes: [kplus.PersistentVolumeAccessMode.READ_WRITE_MANY],
      storage: props.storage,
      storageClassName: HOST_FOLDER_STORAGE_CLASS,
      volume: kplus.PersistentVolume.fromPersistentVolumeName(this, 'bound', volumeName),
    });
  }
}

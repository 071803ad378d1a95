//! The Kubernetes objects that run the tool on every node of a pool, built
//! from typed API objects (`k8s-openapi`) so they are well-formed by
//! construction: a Namespace, and either a DaemonSet (one pod per node, which
//! runs once and then waits, as Sonobuoy's per-node plugins do) or an Indexed
//! Job (one pod per node through a required anti-affinity, done when all are).
//!
//! What the pod needs, and why:
//! - `privileged: true`: the run attaches loop devices (`/dev/loop-control`
//!   and the `/dev/loopN` it gets, which only a privileged container sees),
//!   makes filesystems on them and mounts overlays, EROFS and FUSE in its own
//!   mount namespace (CAP_SYS_ADMIN alone gets neither the device nodes nor
//!   past the runtimes' seccomp and AppArmor profiles for mount(2)).
//! - `hostPath` scratch (`/var/lib/overlaybench/scratch`): the run makes its
//!   backing filesystems' image files there, on the node's own disk; an
//!   emptyDir would do too but is counted against the pod's ephemeral storage.
//! - `hostPath` results (`/var/lib/overlaybench/results`): each pod writes
//!   `<node>/<run-id>/` there, so results outlive the pod for `kubectl cp` or
//!   a collector, and the textfile for node_exporter when asked.
//! - No memory limit: the page-cache workload measures what the kernel keeps
//!   cached, and a cgroup limit would evict it mid-measurement.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Container, EnvVar, EnvVarSource, HostPathVolumeSource, Namespace,
    ObjectFieldSelector, PodAffinityTerm, PodAntiAffinity, PodSpec, PodTemplateSpec,
    ResourceRequirements, SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::FleetError;

/// The Kubernetes minors the manifests are validated against
/// (`kubernetes-validate --strict`, tests/cli/fleet.rs); the objects are built
/// with the API of the oldest.
pub const KUBERNETES_VERSIONS: [&str; 3] = ["1.35.0", "1.36.0", "1.37.0"];

/// Where the scratch filesystems' files go on each node.
pub const SCRATCH_HOST_PATH: &str = "/var/lib/overlaybench/scratch";
/// Where each node's results go (`<node>/<run-id>/`).
pub const RESULTS_HOST_PATH: &str = "/var/lib/overlaybench/results";
/// The mount points inside the container.
pub const SCRATCH_MOUNT: &str = "/scratch";
/// The results mount point inside the container.
pub const RESULTS_MOUNT: &str = "/results";

/// How the pods are scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One pod per matching node, kept (the pod waits after its run).
    DaemonSet,
    /// An Indexed Job of `completions` pods, at most one per node.
    Job {
        /// Pods (= nodes) to run on.
        completions: i32,
    },
}

/// What `fleet manifest` is asked for.
#[derive(Debug, Clone)]
pub struct ManifestConfig {
    /// Image reference.
    pub image: String,
    /// Namespace to create and use.
    pub namespace: String,
    /// `--suite` of each node's run.
    pub suite: String,
    /// `key=value` node labels a node must carry.
    pub node_selector: Vec<(String, String)>,
    /// DaemonSet or Job.
    pub mode: Mode,
    /// Also write node_exporter's textfile (under the results hostPath).
    pub prom: bool,
}

const APP: &str = "overlaybench";

/// Parses `key=value` (a node selector term).
pub fn parse_selector(s: &str) -> Result<(String, String), FleetError> {
    match s.split_once('=') {
        Some((k, v))
            if !k.is_empty()
                && !k.contains(char::is_whitespace)
                && !v.contains(char::is_whitespace) =>
        {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(FleetError::Invalid {
            what: format!("--node-selector {s}"),
            detail:
                "use key=value, e.g. kubernetes.io/os=linux or cloud.google.com/gke-nodepool=pool-a"
                    .into(),
        }),
    }
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([("app.kubernetes.io/name".to_string(), APP.to_string())])
}

fn host_path(name: &str, path: &str) -> Volume {
    Volume {
        name: name.into(),
        host_path: Some(HostPathVolumeSource {
            path: path.into(),
            type_: Some("DirectoryOrCreate".into()),
        }),
        ..Default::default()
    }
}

/// The container's argument list: `fleet node` around a run of the suite.
pub fn container_args(cfg: &ManifestConfig, wait: bool) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "fleet".into(),
        "node".into(),
        "--results".into(),
        RESULTS_MOUNT.into(),
    ];
    if cfg.prom {
        a.extend(["--prom".into(), format!("{RESULTS_MOUNT}/textfile")]);
    }
    if wait {
        a.push("--wait".into());
    }
    a.extend([
        "--".into(),
        "--suite".into(),
        cfg.suite.clone(),
        "--scratch".into(),
        SCRATCH_MOUNT.into(),
        "--no-progress".into(),
    ]);
    a
}

fn pod_spec(cfg: &ManifestConfig, wait: bool, restart: &str) -> PodSpec {
    let node_selector =
        (!cfg.node_selector.is_empty()).then(|| cfg.node_selector.iter().cloned().collect());
    let container = Container {
        name: APP.into(),
        image: Some(cfg.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(container_args(cfg, wait)),
        env: Some(vec![EnvVar {
            name: "NODE_NAME".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "spec.nodeName".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("1".into())),
                ("memory".to_string(), Quantity("1Gi".into())),
                ("ephemeral-storage".to_string(), Quantity("100Mi".into())),
            ])),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            privileged: Some(true),
            run_as_user: Some(0),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "scratch".into(),
                mount_path: SCRATCH_MOUNT.into(),
                ..Default::default()
            },
            VolumeMount {
                name: "results".into(),
                mount_path: RESULTS_MOUNT.into(),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    PodSpec {
        containers: vec![container],
        restart_policy: Some(restart.into()),
        node_selector,
        // Every taint: the pools a platform team taints (GPU, storage) are
        // the ones whose storage most needs measuring.
        tolerations: Some(vec![Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        }]),
        termination_grace_period_seconds: Some(60),
        volumes: Some(vec![
            host_path("scratch", SCRATCH_HOST_PATH),
            host_path("results", RESULTS_HOST_PATH),
        ]),
        ..Default::default()
    }
}

fn meta(cfg: &ManifestConfig, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(cfg.namespace.clone()),
        labels: Some(labels()),
        ..Default::default()
    }
}

/// The manifests as one multi-document YAML stream.
pub fn render(cfg: &ManifestConfig) -> Result<String, FleetError> {
    let yaml = |v: &dyn erased::Yaml| v.yaml();
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(cfg.namespace.clone()),
            labels: Some(labels()),
            ..Default::default()
        },
        ..Default::default()
    };
    let template = |wait: bool, restart: &str| PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels()),
            ..Default::default()
        }),
        spec: Some(pod_spec(cfg, wait, restart)),
    };
    let workload = match cfg.mode {
        Mode::DaemonSet => yaml(&DaemonSet {
            metadata: meta(cfg, APP),
            spec: Some(DaemonSetSpec {
                selector: LabelSelector {
                    match_labels: Some(labels()),
                    ..Default::default()
                },
                template: template(true, "Always"),
                ..Default::default()
            }),
            ..Default::default()
        })?,
        Mode::Job { completions } => {
            if completions < 1 {
                return Err(FleetError::Invalid {
                    what: format!("--completions {completions}"),
                    detail: "use the number of nodes to run on (1 or more)".into(),
                });
            }
            let mut t = template(false, "Never");
            if let Some(spec) = t.spec.as_mut() {
                spec.affinity = Some(Affinity {
                    pod_anti_affinity: Some(PodAntiAffinity {
                        required_during_scheduling_ignored_during_execution: Some(vec![
                            PodAffinityTerm {
                                label_selector: Some(LabelSelector {
                                    match_labels: Some(labels()),
                                    ..Default::default()
                                }),
                                topology_key: "kubernetes.io/hostname".into(),
                                ..Default::default()
                            },
                        ]),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
            }
            yaml(&Job {
                metadata: meta(cfg, APP),
                spec: Some(JobSpec {
                    completion_mode: Some("Indexed".into()),
                    completions: Some(completions),
                    parallelism: Some(completions),
                    backoff_limit: Some(0),
                    template: t,
                    ..Default::default()
                }),
                ..Default::default()
            })?
        }
    };
    Ok(format!("{}---\n{}", yaml(&ns)?, workload))
}

/// Serialising any of the objects above to YAML, without a generic per call site.
mod erased {
    use super::FleetError;

    pub trait Yaml {
        fn yaml(&self) -> Result<String, FleetError>;
    }

    impl<T: serde::Serialize> Yaml for T {
        fn yaml(&self) -> Result<String, FleetError> {
            serde_norway::to_string(self).map_err(|e| FleetError::Render {
                what: "the manifests".into(),
                detail: e.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(mode: Mode) -> ManifestConfig {
        ManifestConfig {
            image: "overlaybench:0.1.0".into(),
            namespace: "overlaybench".into(),
            suite: "quick".into(),
            node_selector: vec![("kubernetes.io/os".into(), "linux".into())],
            mode,
            prom: true,
        }
    }

    #[test]
    fn daemonset_and_job_carry_the_privileges_and_mounts() {
        let y = render(&cfg(Mode::DaemonSet)).expect("renders");
        for want in [
            "kind: Namespace",
            "kind: DaemonSet",
            "privileged: true",
            SCRATCH_HOST_PATH,
            RESULTS_HOST_PATH,
            "spec.nodeName",
            "operator: Exists",
            "--wait",
        ] {
            assert!(y.contains(want), "{want} missing in\n{y}");
        }
        let j = render(&cfg(Mode::Job { completions: 3 })).expect("renders");
        for want in [
            "kind: Job",
            "completionMode: Indexed",
            "kubernetes.io/hostname",
            "restartPolicy: Never",
        ] {
            assert!(j.contains(want), "{want} missing in\n{j}");
        }
        assert!(!j.contains("--wait"));
        assert!(render(&cfg(Mode::Job { completions: 0 })).is_err());
    }

    #[test]
    fn selectors_are_key_value() {
        assert!(parse_selector("a=b").is_ok());
        assert!(parse_selector("novalue").is_err());
        assert!(parse_selector("=b").is_err());
    }
}

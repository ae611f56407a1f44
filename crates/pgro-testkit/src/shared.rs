//! One control plane + kubelet per test binary, and a namespace per test.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client, Config};
use tokio::sync::OnceCell;

use crate::control_plane::{ControlPlane, ControlPlaneConfig};
use crate::infra::{Components, Unavailable, skip_unless_ci};
use crate::kubelet::{Kubelet, KubeletConfig};
use crate::process::harness;

/// The control plane and the kubelet.
#[derive(Debug)]
pub struct TestEnv {
    components: Components,
    control_plane: ControlPlane,
    kubelet: Kubelet,
    started_in: Duration,
    crds: Result<(), String>,
}

static PGRO_BINARY: OnceLock<PathBuf> = OnceLock::new();
static SHARED: OnceCell<Result<TestEnv, (bool, String)>> = OnceCell::const_new();

/// Sets the binary the `pgro` image maps to for the shared [`env`] (call before the first `env()`;
/// e.g. `pgro_testkit::use_pgro_binary(env!("CARGO_BIN_EXE_pgro"))`). `PGRO_BINARY` also works.
pub fn use_pgro_binary(path: impl Into<PathBuf>) {
    let _ = PGRO_BINARY.set(path.into());
}

/// The shared environment of this test binary, started on first use.
///
/// # Errors
/// [`Unavailable`] (skippable outside CI) or the startup failure; the same outcome for every caller.
pub async fn env() -> anyhow::Result<&'static TestEnv> {
    let result = SHARED
        .get_or_init(|| async {
            // Start on the harness runtime: the environment outlives the calling test's runtime.
            init_tracing();
            let started = harness().spawn(async {
                let components = Components::load();
                let mut kubelet = KubeletConfig::from_components(&components);
                if let Some(path) = PGRO_BINARY.get() {
                    kubelet.images.pgro_binary = Some(path.clone());
                }
                // CRDs are installed after startup and their outcome kept, so that a CRD the apiserver
                // rejects fails the tests that need it (see `TestEnv::crds`) rather than every test.
                let control_plane = ControlPlaneConfig {
                    crds: Vec::new(),
                    ..ControlPlaneConfig::default()
                };
                let mut env = TestEnv::start(components, control_plane, kubelet).await?;
                let client = env.client()?;
                let mut outcome = Ok(());
                for path in crate::crds::workspace_crds() {
                    if let Err(error) = crate::crds::install(&client, &path).await {
                        outcome = Err(format!("{error:#}"));
                        break;
                    }
                }
                env.crds = outcome;
                anyhow::Ok(env)
            });
            match started.await {
                Ok(Ok(env)) => Ok(env),
                Ok(Err(error)) => Err((
                    error.downcast_ref::<Unavailable>().is_some(),
                    format!("{error:#}"),
                )),
                Err(join) => Err((
                    false,
                    format!("starting the test environment panicked: {join}"),
                )),
            }
        })
        .await;
    match result {
        Ok(env) => Ok(env),
        Err((true, message)) => Err(Unavailable {
            what: "the test environment".into(),
            hint: message.clone(),
        }
        .into()),
        Err((false, message)) => Err(anyhow!("{message}")),
    }
}

/// Logs of the harness itself go to stderr when `PGRO_TESTKIT_LOG` is set (an `EnvFilter`, e.g. `debug`).
fn init_tracing() {
    if let Ok(filter) = std::env::var("PGRO_TESTKIT_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// [`env`], skipping (returning `None` and printing why) when a component is missing outside CI; under
/// `CI=true` a missing component panics.
pub async fn env_or_skip(test: &str) -> Option<&'static TestEnv> {
    skip_unless_ci(env().await, test)
}

impl TestEnv {
    /// Starts a control plane and a kubelet (not shared; stop it with [`TestEnv::stop`]).
    ///
    /// # Errors
    /// As [`ControlPlane::start`] and [`Kubelet::start`].
    pub async fn start(
        components: Components,
        control_plane: ControlPlaneConfig,
        kubelet: KubeletConfig,
    ) -> anyhow::Result<Self> {
        let begin = Instant::now();
        crate::kubelet::check_prerequisites()?;
        let control_plane = ControlPlane::start(&components, control_plane).await?;
        let kubelet = match Kubelet::start(&control_plane, kubelet).await {
            Ok(kubelet) => kubelet,
            Err(error) => {
                control_plane.stop().await;
                return Err(error);
            }
        };
        Ok(Self {
            components,
            control_plane,
            kubelet,
            started_in: begin.elapsed(),
            crds: Ok(()),
        })
    }

    /// Whether the workspace CRDs (`deploy/crds.yaml`) were installed and Established in the shared
    /// environment (a test binary's [`env`]); a test that needs them should `env.crds()?` first.
    ///
    /// # Errors
    /// The apiserver's reason for rejecting them, or a missing file.
    pub fn crds(&self) -> anyhow::Result<()> {
        self.crds
            .clone()
            .map_err(|e| anyhow!("installing deploy/crds.yaml failed: {e}"))
    }

    /// A new admin client for the current runtime.
    ///
    /// # Errors
    /// When the client cannot be built.
    pub fn client(&self) -> anyhow::Result<Client> {
        self.control_plane.client()
    }

    /// The control plane.
    pub fn control_plane(&self) -> &ControlPlane {
        &self.control_plane
    }

    /// The process kubelet.
    pub fn kubelet(&self) -> &Kubelet {
        &self.kubelet
    }

    /// The installed components.
    pub fn components(&self) -> &Components {
        &self.components
    }

    /// How long starting the control plane and kubelet took.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Creates a namespace with a random name (`t-xxxxxxxx`) and waits for its `default` ServiceAccount
    /// (pods are rejected until it exists).
    ///
    /// # Errors
    /// When the apiserver refuses or the ServiceAccount does not appear within 30 s.
    pub async fn namespace(&self) -> anyhow::Result<TestNamespace> {
        let client = self.client()?;
        let name = format!("t-{}", crate::certs::random_token(8).to_lowercase());
        let api: Api<Namespace> = Api::all(client.clone());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        api.create(&PostParams::default(), &namespace).await?;
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        let deadline = Instant::now() + Duration::from_secs(30);
        while accounts.get_opt("default").await?.is_none() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "no default ServiceAccount in {name} after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(TestNamespace {
            name,
            config: self.control_plane.config().clone(),
            client,
            deleted: false,
        })
    }

    /// Stops the kubelet (killing every pod) and the control plane.
    pub async fn stop(self) {
        self.kubelet.stop().await;
        self.control_plane.stop().await;
    }
}

/// A namespace for one test; deleted (in the background) when dropped.
pub struct TestNamespace {
    name: String,
    config: Config,
    client: Client,
    deleted: bool,
}

impl std::fmt::Debug for TestNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNamespace")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TestNamespace {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A client whose default namespace is this one.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// `Api<K>` in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Deletes the namespace now (its pods are stopped by the kubelet).
    ///
    /// # Errors
    /// When the apiserver refuses.
    pub async fn delete(mut self) -> anyhow::Result<()> {
        self.deleted = true;
        let api: Api<Namespace> = Api::all(self.client.clone());
        api.delete(&self.name, &DeleteParams::background()).await?;
        Ok(())
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if self.deleted {
            return;
        }
        let (name, config) = (self.name.clone(), self.config.clone());
        harness().spawn(async move {
            if let Ok(client) = Client::try_from(config) {
                let api: Api<Namespace> = Api::all(client);
                let _ = api.delete(&name, &DeleteParams::background()).await;
            }
        });
    }
}

//! A NATS cluster of child nats-servers on loopback ports: JetStream replicated streams
//! without Docker, for the cluster tests and `paystate cluster-test`.

use crate::{free_port, BrokerError, NatsServer, ServerOptions};

/// Cluster name used in the servers' `cluster {}` blocks.
pub const CLUSTER_NAME: &str = "paystate";

/// Several nats-servers routed to each other.
pub struct Cluster {
    pub nodes: Vec<NatsServer>,
    names: Vec<String>,
    _temp: tempfile::TempDir,
}

impl Cluster {
    /// Starts `size` nodes (3 for R3 streams) and waits until JetStream answers on each.
    pub async fn start(size: usize) -> Result<Cluster, BrokerError> {
        Cluster::start_with(size, ServerOptions::default()).await
    }

    /// [`Cluster::start`] with every node's extra config (e.g. the users config), environment
    /// and readiness probe taken from `template`.
    pub async fn start_with(size: usize, template: ServerOptions) -> Result<Cluster, BrokerError> {
        let temp = tempfile::Builder::new()
            .prefix("paystate-cluster-")
            .tempdir()?;
        let client_ports: Vec<u16> = (0..size).map(|_| free_port()).collect::<Result<_, _>>()?;
        let route_ports: Vec<u16> = (0..size).map(|_| free_port()).collect::<Result<_, _>>()?;
        let routes: Vec<String> = route_ports
            .iter()
            .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
            .collect();
        let names: Vec<String> = (0..size).map(|i| format!("n{}", i + 1)).collect();
        // Start all processes first (a node waits for a meta-leader, which needs a quorum).
        let mut pending = Vec::new();
        for i in 0..size {
            let opts = ServerOptions {
                port: client_ports[i],
                store_dir: Some(temp.path().join(&names[i])),
                name: Some(names[i].clone()),
                extra_config: format!(
                    "cluster {{\n  name: {CLUSTER_NAME}\n  listen: \"127.0.0.1:{}\"\n  routes: [{}]\n}}\n{}",
                    route_ports[i],
                    routes.join(", "),
                    template.extra_config
                ),
                env: template.env.clone(),
                probe: template.probe.clone(),
                ..Default::default()
            };
            pending.push(tokio::spawn(NatsServer::start(opts)));
        }
        let mut nodes = Vec::new();
        for p in pending {
            nodes.push(
                p.await
                    .map_err(|e| BrokerError::Io(std::io::Error::other(e)))??,
            );
        }
        Ok(Cluster {
            nodes,
            names,
            _temp: temp,
        })
    }

    /// Every node's client URL, comma-separated (what clients and engines connect with).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.url())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The index of the node named `name` (as JetStream reports leaders).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

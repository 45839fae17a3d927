//! The query side that `paystate run` and `paystate dev` start next to the engine: the
//! projector and the gateway's HTTP server.

use paystate_projection::{start_projector, ProjectionStore, ProjectorConfig, ProjectorHandle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct QuerySide {
    pub projector: ProjectorHandle,
    pub projection: ProjectionStore,
    /// The address the HTTP server listens on (`None`: it could not listen; the engine and
    /// the projector run on without it).
    pub http: Option<std::net::SocketAddr>,
    stop_http: oneshot::Sender<()>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

/// Starts the projector and the HTTP server on `http_addr`. A taken address is a warning,
/// not a failure: the engine next to it must keep running.
pub async fn start(
    client: async_nats::Client,
    events_stream: &str,
    replicas: usize,
    http_addr: &str,
) -> anyhow::Result<QuerySide> {
    let js = async_nats::jetstream::new(client);
    let projection = ProjectionStore::open(js, events_stream, replicas).await?;
    let projector = start_projector(projection.clone(), ProjectorConfig::default()).await?;
    let (stop_http, stopped) = oneshot::channel::<()>();
    let (http, server) = match tokio::net::TcpListener::bind(http_addr).await {
        Ok(listener) => {
            let http = listener.local_addr().ok();
            let router = paystate_gateway::router(paystate_gateway::AppState {
                projection: projection.clone(),
            });
            let server = tokio::spawn(paystate_gateway::serve(listener, router, async move {
                let _ = stopped.await;
            }));
            (http, Some(server))
        }
        Err(e) => {
            eprintln!("warning: HTTP gateway not started: cannot listen on {http_addr} (set PAYSTATE_HTTP): {e}");
            (None, None)
        }
    };
    Ok(QuerySide {
        projector,
        projection,
        http,
        stop_http,
        server,
    })
}

impl QuerySide {
    pub async fn shutdown(self) {
        let _ = self.stop_http.send(());
        if let Some(server) = self.server {
            let _ = server.await;
        }
        self.projector.shutdown().await;
    }

    /// `http://addr` or a note that there is none.
    pub fn url(&self) -> String {
        self.http
            .map_or("(no HTTP: address taken)".to_string(), |a| {
                format!("http://{a}")
            })
    }
}

/// How long `dev` waits for the projector to show the sample order.
const DEV_PROJECTION_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Prints the sample order as the projection (and so `GET /orders/{id}`) serves it.
pub async fn show_projected(query: &QuerySide, order: &paystate_events::OrderId) {
    let _ = paystate_projection::wait_caught_up(&query.projection, DEV_PROJECTION_WAIT).await;
    match query.projection.get(order).await {
        Ok(Some(record)) => {
            println!("\nprojected (GET {}/orders/{order}):", query.url());
            print!(
                "{}",
                crate::cmd::order::render(&paystate_projection::OrderView::from(&record))
            );
        }
        Ok(None) => println!("\nthe projection has not caught up with order {order} yet"),
        Err(e) => println!("\nprojection unavailable: {e}"),
    }
}

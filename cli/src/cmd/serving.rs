//! Showing what the query side serves (used by `paystate dev`).

use paystate_projection::ProjectionStore;

/// How long `dev` waits for the projector to show the sample order.
const DEV_PROJECTION_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Prints the sample order as the projection (and so `GET /orders/{id}`) serves it.
pub async fn show_projected(
    projection: &ProjectionStore,
    gateway_url: &str,
    order: &paystate_events::OrderId,
) {
    let _ = paystate_projection::wait_caught_up(projection, DEV_PROJECTION_WAIT).await;
    match projection.get(order).await {
        Ok(Some(record)) => {
            println!("\nprojected (GET {gateway_url}/orders/{order}):");
            print!(
                "{}",
                crate::cmd::order::render(&paystate_projection::OrderView::from(&record))
            );
        }
        Ok(None) => println!("\nthe projection has not caught up with order {order} yet"),
        Err(e) => println!("\nprojection unavailable: {e}"),
    }
}

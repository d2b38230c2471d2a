//! Test doubles and tools that drive a real `armbot` process from outside.
pub mod fake_scaleway;
pub mod fake_slack;
pub mod hostile;
pub mod load;
pub mod payloads;
pub mod process;

/// Serves `app` on 127.0.0.1 on a free port; returns its base URL and the server task.
pub async fn serve_loopback(
    app: axum::Router,
) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}"), task))
}

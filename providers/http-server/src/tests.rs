//! The server on a real socket, with components that stand in for the host's: what it admits, what
//! a component receives, and that nothing of it outlives a stop (in the host's process, a
//! connection left open would keep serving a stopped provider's routes).

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::*;

/// Answers every request with `200 you sent <body>`, and keeps what it was sent.
#[derive(Default)]
struct Echo {
    received: Mutex<Vec<(String, Bytes)>>,
}

impl Component for Echo {
    fn handle(
        &self,
        request: hyper::Request<Bytes>,
    ) -> BoxFuture<'static, anyhow::Result<hyper::Response<Bytes>>> {
        let (parts, body) = request.into_parts();
        self.received
            .lock()
            .unwrap()
            .push((parts.uri.to_string(), body.clone()));
        let answer = [b"you sent ".as_slice(), &body].concat();
        Box::pin(async move { Ok(hyper::Response::new(Bytes::from(answer))) })
    }
}

/// Never answers.
struct Silent;

impl Component for Silent {
    fn handle(
        &self,
        _: hyper::Request<Bytes>,
    ) -> BoxFuture<'static, anyhow::Result<hyper::Response<Bytes>>> {
        Box::pin(std::future::pending())
    }
}

/// Every component by id.
struct Known(HashMap<&'static str, Arc<dyn Component>>);

impl Components for Known {
    fn reach(&self, id: &str) -> BoxFuture<'_, anyhow::Result<Arc<dyn Component>>> {
        let found = self.0.get(id).cloned();
        let id = id.to_string();
        Box::pin(async move { found.with_context(|| format!("no component {id}")) })
    }
}

/// A server on a free port of 127.0.0.1, `/Echo` linked to `echo` and `/Silent` to a component
/// that never answers, serving; and its address.
async fn serving(echo: Arc<Echo>) -> (HttpServer, SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let config = ServerConfig::from_map(&orders_provider_support::config_map(&[
        ("address", &address),
        ("invoke_timeout_ms", "200"),
    ]))
    .unwrap();
    let components = Known(HashMap::from([
        ("echo", echo as Arc<dyn Component>),
        ("silent", Arc::new(Silent) as Arc<dyn Component>),
    ]));
    let server = HttpServer::start(config, Arc::new(components))
        .await
        .unwrap();
    for (path, component) in [("/Echo", "echo"), ("/Silent", "silent")] {
        link(&server, path, component).await;
    }
    server.start_up_links_taken();
    (server, address.parse().unwrap())
}

async fn link(server: &HttpServer, path: &str, component: &str) {
    let config = orders_provider_support::config_map(&[("path", path)]);
    server
        .serve_path(component, &path.to_lowercase(), &config)
        .await
        .unwrap();
}

/// Sends one HTTP/1.1 request on `connection` (kept alive) and reads its answer: status and body.
async fn exchange(
    connection: &mut TcpStream,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: orders.test\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    connection.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = connection.read(&mut buffer).await.unwrap();
        assert!(
            read > 0,
            "the connection closed before the answer was complete"
        );
        answer.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_string)
                })
                .map_or(0, |n| n.trim().parse().unwrap());
            if body.len() >= length {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                return (status, body.to_string());
            }
        }
    }
}

/// A `GET path` on a new connection: its status and the `error` code of its JSON body.
async fn error_of_get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut connection = TcpStream::connect(address).await.unwrap();
    let (status, body) = exchange(&mut connection, "GET", path, "").await;
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    (status, error["error"].as_str().unwrap_or(&body).to_string())
}

#[tokio::test]
async fn a_linked_path_reaches_its_component_with_the_whole_body_and_an_absolute_uri() {
    let echo = Arc::new(Echo::default());
    let (_server, address) = serving(Arc::clone(&echo)).await;
    let mut connection = TcpStream::connect(address).await.unwrap();
    let (status, body) = exchange(&mut connection, "POST", "/Echo?x=1", "{\"sum\":10}").await;
    assert_eq!((status, body.as_str()), (200, "you sent {\"sum\":10}"));
    assert_eq!(
        *echo.received.lock().unwrap(),
        [(
            "http://orders.test/Echo?x=1".to_string(),
            Bytes::from_static(b"{\"sum\":10}")
        )]
    );
}

#[tokio::test]
async fn an_unknown_path_is_a_json_404_and_reaches_no_component() {
    let echo = Arc::new(Echo::default());
    let (_server, address) = serving(Arc::clone(&echo)).await;
    assert_eq!(
        error_of_get(address, "/Nowhere").await,
        (404, "unknown_path".to_string())
    );
    assert!(echo.received.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_component_that_does_not_answer_in_time_is_a_json_503() {
    let (_server, address) = serving(Arc::default()).await;
    assert_eq!(
        error_of_get(address, "/Silent").await,
        (503, "service_unavailable".to_string())
    );
}

#[tokio::test]
async fn a_stopped_server_closes_its_open_connections_and_frees_its_port() {
    let (server, address) = serving(Arc::default()).await;
    let mut kept_alive = TcpStream::connect(address).await.unwrap();
    assert_eq!(exchange(&mut kept_alive, "POST", "/Echo", "a").await.0, 200);

    server.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), kept_alive.read_to_end(&mut rest))
        .await
        .expect("the open connection is closed when the server stops");
    assert!(closed.is_ok() && rest.is_empty(), "{closed:?} {rest:?}");
    // The port is free: a new server (the host starts the provider again) can listen there.
    let mut freed = false;
    for _ in 0..50 {
        if tokio::net::TcpListener::bind(address).await.is_ok() {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(freed, "{address} is still taken after the stop");
}

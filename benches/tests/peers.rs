//! Each peer of the side-by-side benchmark (the `peer` binary) counts views and
//! reads them back through the routes loadgen uses: 3 POSTs, then the GET says 3.
//! Peer A runs against the real Cassandra, Peer B against a real redis-server
//! that the test starts on a Unix socket of its own.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;

/// The `peer` binary as a child process; killed when dropped.
struct Peer {
    child: Child,
    base: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_peer(args: &[&str]) -> Peer {
    let mut child = Command::new(env!("CARGO_BIN_EXE_peer"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("peer starts");
    // The first line on stdout says where it listens (after the store is set up).
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("peer did not start (is the store up?): {line:?}"))
        .to_owned();
    Peer { child, base }
}

async fn three_views_read_back_as_three(peer: &Peer) {
    let http = reqwest::Client::new();
    let video = uuid::Uuid::new_v4();
    for _ in 0..3 {
        let res = http.post(format!("{}/api/v1/videos/id/{video}/view", peer.base)).send().await.unwrap();
        assert_eq!(res.status(), 204);
    }
    let body: serde_json::Value = http
        .get(format!("{}/api/v1/videos/{video}/views", peer.base))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["views"], 3, "{body}");
    assert_eq!(body["videoId"], video.to_string());
    let bad = http.post(format!("{}/api/v1/videos/id/nope/view", peer.base)).send().await.unwrap();
    assert_eq!(bad.status(), 422);
    let metrics = http.get(format!("{}/metrics", peer.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "peer_db_writes_total 3"), "{metrics}");
}

#[tokio::test]
async fn peer_a_counts_with_a_cassandra_counter() {
    let nodes = std::env::var("VCOUNT_CASSANDRA_NODES").unwrap_or_else(|_| "127.0.0.1:19042".into());
    let keyspace = format!("t_peer_a_{:08x}", rand::rng().random::<u32>());
    let peer = start_peer(&["cassandra", "--nodes", &nodes, "--keyspace", &keyspace]);
    three_views_read_back_as_three(&peer).await;
}

#[tokio::test]
async fn peer_b_counts_with_redis_incr() {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("redis-server").is_file()));
    assert!(found, "redis-server is missing: run scripts/install-redis (Debian's redis-server package)");
    let dir = std::env::temp_dir().join(format!("t-peer-b-{:08x}", rand::rng().random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("redis.sock");
    // No TCP port (0), a private socket, no persistence: nothing to collide with.
    let mut redis = Command::new("redis-server")
        .args(["--port", "0", "--unixsocket"])
        .arg(&socket)
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Path::new(&socket).exists() {
        assert!(Instant::now() < deadline, "redis-server did not open {}", socket.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("unix://{}", socket.display());
    let peer = start_peer(&["redis", "--url", &url]);
    three_views_read_back_as_three(&peer).await;
    drop(peer);
    let _ = redis.kill();
    let _ = redis.wait();
    std::fs::remove_dir_all(&dir).ok();
}

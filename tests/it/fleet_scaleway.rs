//! The Scaleway client against the fake Scaleway, and against wiremock servers that answer with
//! recorded bodies (`tests/data/scaleway/`) or the odd answers the fake does not give (error
//! bodies of every type, lying totals, pages ignored, non-JSON).

use std::time::Duration;

use armbot::fleet::{
    Deleted, Operation, RetryPolicy, ScalewayClient, ScwError, ServerState, VolumeType,
};
use armbot_fakes::{FakeScaleway, ScwFailure, ScwOp, ScwServer};
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "scw-secret-9c1f2e3d-aaaa-bbbb-cccc-123456789abc";
const ZONE: &str = "fr-par-1";
const SERVERS: &str = "/instance/v1/zones/fr-par-1/servers";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/data/scaleway/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// Millisecond backoffs so retry tests stay fast.
fn fast_policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        max_retry_after: Duration::from_millis(20),
    }
}

fn client(server: &MockServer) -> ScalewayClient {
    client_at(&server.uri())
}

fn client_at(uri: &str) -> ScalewayClient {
    ScalewayClient::new(uri, SecretString::from(KEY), Duration::from_secs(5))
        .with_retry_policy(fast_policy(3))
}

/// A fake Scaleway that wants [`KEY`], with `servers` in [`ZONE`], and the client for it.
async fn fake(servers: impl IntoIterator<Item = ScwServer>) -> (FakeScaleway, ScalewayClient) {
    let scw = FakeScaleway::start().await;
    scw.require_key(KEY);
    scw.set_zone(ZONE, servers);
    let client = client_at(&scw.uri());
    (scw, client)
}

fn synthetic_server(i: usize, state: &str) -> ScwServer {
    ScwServer::new(
        ZONE,
        format!("00000000-0000-0000-0000-{i:012}"),
        format!("runner-abc-arm-{i}"),
    )
    .commercial_type("BASIC2-A4C-8G")
    .project("proj")
    .state(state)
}

/// The `page` of each server list the fake answered, in order.
fn list_pages(scw: &FakeScaleway) -> Vec<String> {
    scw.calls_to(ScwOp::ListServers)
        .iter()
        .map(|c| c.query("page").unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn recorded_list_parses_and_sends_the_key_as_x_auth_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(SERVERS))
        .and(header("X-Auth-Token", KEY))
        .and(query_param("per_page", "100"))
        .and(query_param("page", "1"))
        .and(query_param(
            "project",
            "fa1e3217-dc80-42ac-85c3-3f034b78b552",
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-Total-Count", "3")
                .set_body_json(fixture("list-servers.json")),
        )
        .expect(1)
        .mount(&server)
        .await;

    let servers = client(&server)
        .list_servers(ZONE, Some("fa1e3217-dc80-42ac-85c3-3f034b78b552"))
        .await
        .expect("list works");

    assert_eq!(servers.len(), 3);
    let first = &servers[0];
    assert_eq!(first.name, "cli-srv-priceless-black");
    assert_eq!(first.state, ServerState::Stopped);
    assert_eq!(first.arch, "x86_64");
    assert_eq!(first.commercial_type, "DEV1-S");
    assert_eq!(first.allowed_actions, vec!["poweron", "backup"]);
    assert_eq!(first.volumes["0"].volume_type, VolumeType::SbsVolume);
    assert_eq!(first.public_ips[0].address, "51.158.97.101");
    assert!(!first.public_ips[0].dynamic);
    assert!(first.modification_date.is_some());
    assert!(servers.iter().all(|s| !s.protected));
}

#[tokio::test]
async fn pagination_reads_three_pages_for_250_servers() {
    let (scw, client) = fake((0..250).map(|i| synthetic_server(i, "running"))).await;

    let servers = client.list_servers(ZONE, None).await.expect("list works");
    assert_eq!(servers.len(), 250);
    let mut ids: Vec<&str> = servers.iter().map(|s| s.id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 250);
    assert_eq!(list_pages(&scw), ["1", "2", "3"]);
    let lists = scw.calls_to(ScwOp::ListServers);
    assert!(lists.iter().all(|c| c.query("per_page") == Some("100")));
}

#[tokio::test]
async fn an_empty_page_stops_the_loop_even_if_the_total_says_more() {
    let server = MockServer::start().await;
    let page = |n: usize| {
        let servers: Vec<Value> = (n * 100..n * 100 + 100)
            .map(|i| synthetic_server(i, "running").json())
            .collect();
        ResponseTemplate::new(200)
            .insert_header("X-Total-Count", "500")
            .set_body_json(json!({ "servers": servers }))
    };
    for (n, response) in [(1, page(0)), (2, page(1))] {
        Mock::given(method("GET"))
            .and(path(SERVERS))
            .and(query_param("page", n.to_string().as_str()))
            .respond_with(response)
            .expect(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path(SERVERS))
        .and(query_param("page", "3"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-Total-Count", "500")
                .set_body_json(json!({ "servers": [] })),
        )
        .expect(1)
        .mount(&server)
        .await;

    let servers = client(&server)
        .list_servers(ZONE, None)
        .await
        .expect("list works");
    assert_eq!(servers.len(), 200);
}

#[tokio::test]
async fn a_server_ignoring_page_does_not_loop_forever() {
    let server = MockServer::start().await;
    // Always the same page and no total: the second page adds nothing new, so the list stops.
    let servers: Vec<Value> = (0..100)
        .map(|i| synthetic_server(i, "running").json())
        .collect();
    Mock::given(method("GET"))
        .and(path(SERVERS))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "servers": servers })))
        .expect(2)
        .mount(&server)
        .await;

    let listed = client(&server)
        .list_servers(ZONE, None)
        .await
        .expect("list works");
    assert_eq!(listed.len(), 100);
}

#[tokio::test]
async fn every_state_is_parsed() {
    let states = [
        ("running", ServerState::Running),
        ("stopped", ServerState::Stopped),
        ("stopped in place", ServerState::StoppedInPlace),
        ("starting", ServerState::Starting),
        ("stopping", ServerState::Stopping),
        ("locked", ServerState::Locked),
        ("migrating", ServerState::Other("migrating".to_owned())),
    ];
    let (scw, client) = fake(
        states
            .iter()
            .enumerate()
            .map(|(i, (wire, _))| synthetic_server(i, wire)),
    )
    .await;

    let listed = client.list_servers(ZONE, None).await.expect("list works");
    let got: Vec<ServerState> = listed.into_iter().map(|s| s.state).collect();
    let want: Vec<ServerState> = states.into_iter().map(|(_, s)| s).collect();
    assert_eq!(got, want);
    assert_eq!(list_pages(&scw), ["1"]);
}

#[tokio::test]
async fn recorded_get_server_bodies_parse_through_a_power_cycle() {
    let server = MockServer::start().await;
    let id = "37eebbd9-a323-47fd-8192-07e13fe467a2";
    let client = client(&server);
    for (file, state) in [
        ("get-server-starting.json", ServerState::Starting),
        ("get-server-running.json", ServerState::Running),
        ("get-server-stopping.json", ServerState::Stopping),
        ("get-server-stopped.json", ServerState::Stopped),
    ] {
        server.reset().await;
        Mock::given(method("GET"))
            .and(path(format!("{SERVERS}/{id}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(fixture(file)))
            .expect(1)
            .mount(&server)
            .await;
        let got = client
            .get_server(ZONE, id)
            .await
            .expect("get works")
            .expect("server exists");
        assert_eq!(got.id, id);
        assert_eq!(got.state, state, "{file}");
    }
}

#[tokio::test]
async fn get_of_a_deleted_server_is_none() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!(
            "{SERVERS}/9e858e94-9b0f-4a2e-9f54-40437bd3ff05"
        )))
        .respond_with(ResponseTemplate::new(404).set_body_json(fixture("error-404-server.json")))
        .expect(1)
        .mount(&server)
        .await;

    let got = client(&server)
        .get_server(ZONE, "9e858e94-9b0f-4a2e-9f54-40437bd3ff05")
        .await
        .expect("404 is not an error");
    assert_eq!(got, None);
}

#[tokio::test]
async fn deletes_map_204_and_404() {
    // s2 and v2 are not there; the rest is, each where its API keeps it.
    let (scw, c) = fake([ScwServer::new(ZONE, "s1", "runner-abc-arm-1").state("stopped")]).await;
    scw.add_volume(ZONE, "v1", "l_ssd");
    scw.add_volume(ZONE, "b1", "sbs_volume");
    scw.add_ip(ZONE, "ip1");
    assert_eq!(c.delete_server(ZONE, "s1").await, Ok(Deleted::Yes));
    assert_eq!(c.delete_server(ZONE, "s2").await, Ok(Deleted::AlreadyGone));
    assert_eq!(c.delete_volume(ZONE, "v1").await, Ok(Deleted::Yes));
    assert_eq!(c.delete_volume(ZONE, "v2").await, Ok(Deleted::AlreadyGone));
    assert_eq!(c.delete_block_volume(ZONE, "b1").await, Ok(Deleted::Yes));
    assert_eq!(c.delete_ip(ZONE, "ip1").await, Ok(Deleted::Yes));
    // Each once, on its own API, with the key.
    for (op, id) in [
        (ScwOp::DeleteServer, "s1"),
        (ScwOp::DeleteServer, "s2"),
        (ScwOp::DeleteVolume, "v1"),
        (ScwOp::DeleteVolume, "v2"),
        (ScwOp::DeleteBlockVolume, "b1"),
        (ScwOp::DeleteIp, "ip1"),
    ] {
        let calls = scw.calls_to(op.on(id));
        assert_eq!(calls.len(), 1, "{op:?} {id}");
        assert_eq!(calls[0].auth_token.as_deref(), Some(KEY));
    }
    assert_eq!(scw.calls().len(), 6);
}

/// Each error body from the research notes → the variant and the sentence a user sees.
#[tokio::test]
async fn error_types_map_to_variants_and_user_sentences() {
    let cases: Vec<(u16, Value, ScwError, &str)> = vec![
        (
            401,
            json!({"type":"denied_authentication","method":"api_key","reason":"expired","message":"authentication is denied"}),
            ScwError::InvalidKey {
                reason: "expired".into(),
            },
            "The Scaleway key is invalid or expired: ask an admin to set a new SCW_SECRET_KEY.",
        ),
        (
            403,
            json!({"type":"permissions_denied","message":"insufficient permissions","details":[{"action":"read","resource":"instance_server"}]}),
            ScwError::PermissionDenied {
                operation: Operation::ListServers,
                action: Some("read".into()),
                resource: Some("instance_server".into()),
            },
            "The Scaleway key lacks permission to list servers (`read` on `instance_server`) in project `proj-1`: give it InstancesReadOnly (or InstancesFullAccess, which `/arm reap` needs) in that project.",
        ),
        (
            403,
            json!({"type":"quotas_exceeded","message":"quota(s) exceeded for this resource","details":[{"resource":"BASIC2-A4C-8G","quota":6,"current":6}]}),
            ScwError::QuotaExceeded {
                details: vec![armbot::fleet::QuotaExceededDetail {
                    resource: "BASIC2-A4C-8G".into(),
                    quota: 6,
                    current: 6,
                }],
            },
            "A Scaleway quota is exhausted (`BASIC2-A4C-8G` 6 of 6): free some resources (`/arm reap`) or ask Scaleway support for a higher quota.",
        ),
        (
            409,
            json!({"type":"transient_state","message":"resource is in a transient state","resource":"instance_server","resource_id":"s1","current_state":"stopping"}),
            ScwError::TransientState {
                resource_id: Some("s1".into()),
                current_state: Some("stopping".into()),
            },
            "The server is changing state (`stopping`); try again in a minute.",
        ),
        (
            400,
            json!({"type":"invalid_arguments","message":"invalid argument(s)","details":[{"argument_name":"project","reason":"format","help_message":"must be a UUID"}]}),
            ScwError::InvalidRequest {
                message: "invalid argument(s) (project: must be a UUID)".into(),
            },
            "Scaleway refused the request: invalid argument(s) (project: must be a UUID). Check the zone and project settings.",
        ),
        (
            400,
            json!({"type":"invalid_request_error","message":"server should be running"}),
            ScwError::InvalidRequest {
                message: "server should be running".into(),
            },
            "Scaleway refused the request: server should be running. Check the zone and project settings.",
        ),
        (
            412,
            json!({"type":"precondition_failed","precondition":"resource_still_in_use","message":"resource is still in use"}),
            ScwError::Api {
                status: 412,
                kind: "precondition_failed".into(),
                message: "resource is still in use".into(),
            },
            "Scaleway answered with an error (HTTP 412: resource is still in use).",
        ),
    ];
    for (status, body, variant, sentence) in cases {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(SERVERS))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            // 4xx are never retried.
            .expect(1)
            .mount(&server)
            .await;
        let err = client(&server)
            .list_servers(ZONE, Some("proj-1"))
            .await
            .expect_err("an error");
        assert_eq!(err, variant);
        assert_eq!(err.user_message(Some("proj-1")), sentence);
        assert!(!err.to_string().contains(KEY));
    }
}

#[tokio::test]
async fn legacy_unknown_resource_on_get_is_none() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{SERVERS}/old")))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"type":"unknown_resource","message":"\"old\" not found"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(client(&server).get_server(ZONE, "old").await, Ok(None));
}

#[tokio::test]
async fn rate_limit_then_success_honours_retry_after() {
    let (scw, client) = fake([synthetic_server(1, "running")]).await;
    scw.fail_next(ScwOp::ListServers, 1, ScwFailure::rate_limited(0));

    let listed = client.list_servers(ZONE, None).await.expect("retried");
    assert_eq!(listed.len(), 1);
    // The 429, then the same page again.
    assert_eq!(list_pages(&scw), ["1", "1"]);
}

#[tokio::test]
async fn a_long_retry_after_is_capped_by_the_policy() {
    let (scw, client) = fake([]).await;
    scw.fail_always(ScwOp::ListServers, ScwFailure::rate_limited(3600));
    let started = std::time::Instant::now();
    let err = client
        .list_servers(ZONE, None)
        .await
        .expect_err("rate limited");
    assert_eq!(err, ScwError::RateLimited);
    assert_eq!(
        err.user_message(None),
        "Scaleway is rate-limiting us; try again in a minute."
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(scw.count(ScwOp::ListServers), 3, "max_attempts");
}

#[tokio::test]
async fn server_error_then_success() {
    let (scw, client) = fake([]).await;
    scw.fail_next(ScwOp::ListServers, 1, ScwFailure::status(503));
    let listed = client.list_servers(ZONE, None).await.expect("retried");
    assert!(listed.is_empty());
    assert_eq!(list_pages(&scw), ["1", "1"]);
}

#[tokio::test]
async fn persistent_server_errors_stop_after_max_attempts() {
    let (scw, client) = fake([synthetic_server(1, "stopped")]).await;
    let id = "00000000-0000-0000-0000-000000000001";
    scw.fail_always(ScwOp::DeleteServer.on(id), ScwFailure::status(500));
    let err = client.delete_server(ZONE, id).await.expect_err("fails");
    assert_eq!(err, ScwError::Server { status: 500 });
    assert_eq!(scw.count(ScwOp::DeleteServer.on(id)), 3);
    assert!(scw.has_server(ZONE, id), "never deleted");
}

#[tokio::test]
async fn timeouts_are_retried_a_bounded_number_of_times() {
    let (scw, _) = fake([]).await;
    scw.set_latency(Duration::from_secs(2));
    let c = ScalewayClient::new(
        &scw.uri(),
        SecretString::from(KEY),
        Duration::from_millis(50),
    )
    .with_retry_policy(fast_policy(2));
    let err = c.list_servers(ZONE, None).await.expect_err("times out");
    assert_eq!(err, ScwError::Timeout);
    assert_eq!(
        err.user_message(None),
        "Scaleway did not answer in time; try again in a minute."
    );
    assert_eq!(scw.count(ScwOp::ListServers), 2);
}

#[tokio::test]
async fn connection_refused_is_a_network_error() {
    // Bind then drop a listener: the port is very likely closed afterwards.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let c = ScalewayClient::new(
        &format!("http://127.0.0.1:{port}"),
        SecretString::from(KEY),
        Duration::from_secs(1),
    )
    .with_retry_policy(fast_policy(2));
    let err = c.get_server(ZONE, "x").await.expect_err("unreachable");
    assert!(matches!(err, ScwError::Network(_)), "{err:?}");
    assert!(!err.to_string().contains(KEY));
}

#[tokio::test]
async fn a_2xx_that_is_not_json_is_a_decode_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(SERVERS))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>maintenance</html>"))
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server)
        .list_servers(ZONE, None)
        .await
        .expect_err("not JSON");
    assert!(matches!(err, ScwError::Decode(_)));
}

#[tokio::test]
async fn quotas_paginate_by_total_count() {
    let (scw, client) = fake([]).await;
    let quotum = |i: usize| {
        json!({
            "name": format!("quotum_{i}"), "pretty_name": format!("Quotum {i}"), "unit": "resource",
            "locality_type": "zone",
            "limits": [{"zone": "fr-par-1", "limit": 20}, {"zone": "nl-ams-1", "unlimited": true}]
        })
    };
    scw.set_quotas("org-1", (0..130).map(quotum).collect());
    let quota = client.list_quotas("org-1").await.expect("quotas listed");
    assert_eq!(quota.len(), 130);
    assert_eq!(quota[0].limits[0].limit, Some(20));
    assert_eq!(quota[0].limits[1].unlimited, Some(true));
    let calls = scw.calls_to(ScwOp::ListQuotas);
    let pages: Vec<Option<&str>> = calls.iter().map(|c| c.query("page")).collect();
    assert_eq!(pages, [Some("1"), Some("2")]);
    for call in &calls {
        assert_eq!(call.query("organization_id"), Some("org-1"));
        assert_eq!(call.query("page_size"), Some("100"));
        assert_eq!(call.auth_token.as_deref(), Some(KEY));
    }
}

#[tokio::test]
async fn the_key_never_shows_in_debug_or_errors() {
    let server = MockServer::start().await;
    let c = client(&server);
    let debug = format!("{c:?}");
    assert!(!debug.contains(KEY), "{debug}");
    assert!(debug.contains("redacted"));

    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "type": "denied_authentication", "method": "api_key", "reason": "not_found"
        })))
        .mount(&server)
        .await;
    let err = c.list_servers(ZONE, None).await.expect_err("denied");
    for text in [
        err.to_string(),
        format!("{err:?}"),
        err.user_message(Some("p")),
    ] {
        assert!(!text.contains(KEY), "{text}");
    }
}

//! The runner metrics client against a wiremock runner manager.

use std::time::Duration;

use armbot::runner::{RunnerMetricsClient, RunnerMetricsError};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SCRAPE: &str = "# HELP gitlab_runner_autoscaling_machine_states The current number of machines per state in this provider.\n\
# TYPE gitlab_runner_autoscaling_machine_states gauge\n\
gitlab_runner_autoscaling_machine_states{executor=\"docker+machine\",state=\"used\"} 20\n\
gitlab_runner_autoscaling_machine_states{executor=\"docker+machine\",state=\"stuck-on-removing\"} 3\n\
gitlab_runner_limit{runner=\"qasr7s6xy\",system_id=\"s_1\"} 30\n";

async fn runner_with(response: ResponseTemplate, times: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/metrics"))
        .respond_with(response)
        .expect(times)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn fetches_and_parses_with_or_without_the_metrics_path() {
    let server = runner_with(ResponseTemplate::new(200).set_body_string(SCRAPE), 2).await;
    for url in [server.uri(), format!("{}/metrics/", server.uri())] {
        let states = RunnerMetricsClient::new(&url, Duration::from_secs(2))
            .fetch()
            .await
            .expect("metrics read");
        assert_eq!(states.used, 20);
        assert_eq!(states.stuck_on_removing, 3);
        assert_eq!(states.limit, Some(30));
    }
}

#[tokio::test]
async fn a_5xx_is_retried_once() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/metrics"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/metrics"))
        .respond_with(ResponseTemplate::new(200).set_body_string(SCRAPE))
        .expect(1)
        .mount(&server)
        .await;
    let states = RunnerMetricsClient::new(&server.uri(), Duration::from_secs(2))
        .fetch()
        .await
        .expect("second attempt works");
    assert_eq!(states.total(), 23);
}

#[tokio::test]
async fn a_404_is_not_retried() {
    let server = runner_with(ResponseTemplate::new(404), 1).await;
    let err = RunnerMetricsClient::new(&server.uri(), Duration::from_secs(2))
        .fetch()
        .await
        .expect_err("no metrics");
    assert_eq!(err, RunnerMetricsError::Status(404));
    assert!(err.user_message().contains("listen_address"));
}

#[tokio::test]
async fn metrics_without_machine_states_say_so() {
    let server = runner_with(
        ResponseTemplate::new(200).set_body_string("gitlab_runner_concurrent 10\n"),
        1,
    )
    .await;
    let err = RunnerMetricsClient::new(&server.uri(), Duration::from_secs(2))
        .fetch()
        .await
        .expect_err("not a docker+machine runner");
    assert_eq!(err, RunnerMetricsError::NoMachineStates);
    assert!(err.user_message().contains("docker+machine"));
}

#[tokio::test]
async fn a_slow_runner_times_out_after_two_attempts() {
    let server = runner_with(
        ResponseTemplate::new(200)
            .set_body_string(SCRAPE)
            .set_delay(Duration::from_secs(2)),
        2,
    )
    .await;
    let err = RunnerMetricsClient::new(&server.uri(), Duration::from_millis(50))
        .fetch()
        .await
        .expect_err("too slow");
    assert_eq!(err, RunnerMetricsError::Timeout);
}

#[tokio::test]
async fn a_bad_url_is_reported() {
    let err = RunnerMetricsClient::new("not a url", Duration::from_secs(1))
        .fetch()
        .await
        .expect_err("bad url");
    assert_eq!(err, RunnerMetricsError::BadUrl);
    assert!(err.user_message().contains("runner_metrics_url"));
}

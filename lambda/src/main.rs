#![forbid(unsafe_code)]
//! `bootstrap`: the thingcall gateway as an AWS Lambda function (runtime
//! `provided.al2023`). Configured by the gateway's environment variables
//! (`THINGCALL_MQTT_URL`, `THINGCALL_BROKER_PROFILE`, ...; see
//! `thingcall-server --help`); see deploy/aws/lambda/.

use clap::Parser;
use thingcall_lambda::Function;
use thingcall_server::Config;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    // Environment only: a Lambda function gets no command line.
    let config = Config::parse_from(["thingcall-lambda"]);
    let function: &'static Function = Box::leak(Box::new(Function::start(config).await?));
    lambda_http::run(lambda_http::service_fn(move |request| async move {
        Ok::<_, std::convert::Infallible>(function.handle(request).await)
    }))
    .await
}

//! Lambda entry point of `GET /api/v1/openapi.json`; `api-docs --print` writes the description to
//! stdout instead (for client generators, without a running stack).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    if std::env::args().nth(1).as_deref() == Some("--print") {
        println!("{:#}", api_docs::spec::spec());
        return Ok(());
    }
    shared::telemetry::init_logging();
    shared::http::run(shared::http::with_build_id(api_docs::router(), shared::build_id!())).await
}

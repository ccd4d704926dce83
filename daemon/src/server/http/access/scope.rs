//! A query token limited to some projects (`[[access_tokens]] projects`) reaches only their data: the project of
//! each query, catalog lookup and segment read is checked before the handler runs. Routes that span every project
//! (the project list, the status board, the plan) need an unlimited token.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};

use super::super::error::ApiError;
use super::super::ingest::Params;
use super::super::parse_query;
use super::super::state::AppState;
use super::Grant;

/// The largest query body read here (the handler's own extractor takes no more).
const MAX_QUERY_BODY: usize = 2 * 1024 * 1024;

/// `req`, unchanged (its body put back), when `grant` reaches its project; else a 403.
pub async fn check(state: &AppState, grant: &Grant, req: Request) -> Result<Request, ApiError> {
    let path = req.uri().path().to_owned();
    let project = if req.method() == Method::POST && path == "/v1/query" {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_QUERY_BODY)
            .await
            .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "query body over 2 MiB"))?;
        // The handler's own reading of the body, so that the project checked is the project queried.
        let (query, _) = parse_query(&bytes)?;
        let req = Request::from_parts(parts, Body::from(bytes));
        return reach(grant, &query.project, &path).map(|()| req);
    } else if req.method() == Method::GET && path == "/v1/catalog/segments" {
        let mut params = Params::default();
        params.read(req.uri().query().unwrap_or("").as_bytes())?;
        params.project.unwrap_or_else(|| "default".to_owned())
    } else if let Some(id) = path.strip_prefix("/v1/segments/").filter(|_| req.method() == Method::GET) {
        match id.parse::<tierd_store::SegmentId>().ok().and_then(|id| state.catalog.pin().get(&id).cloned()) {
            Some(meta) => meta.project.clone(),
            // Not a segment: the handler answers 400 or 404, and reads nothing.
            None => return Ok(req),
        }
    } else {
        let projects = grant.projects.iter().flatten().cloned().collect::<Vec<_>>().join(", ");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "token {:?} is limited to projects {projects}; {path} spans every project: use a token without \
                 projects",
                grant.name
            ),
        )
        .with_reason("forbidden"));
    };
    reach(grant, &project, &path).map(|()| req)
}

fn reach(grant: &Grant, project: &str, path: &str) -> Result<(), ApiError> {
    if grant.reaches(project) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        format!("token {:?} may not read project {project:?} ({path})", grant.name),
    )
    .with_reason("forbidden"))
}

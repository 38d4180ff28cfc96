//! `DELETE /v1/persons/{type}/{value}`: erasure of a person, answered once it is done on disk.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{error, ApiError, AppState};

/// Erases the person that identity belongs to, with every linked identity; lists them and
/// the count of their events erased.
pub async fn person(
    State(s): State<AppState>,
    Path((kind, value)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(match s.live.erase(kind.clone(), value).await? {
        Ok(Some(person)) => {
            if let Some(actions) = &s.actions {
                if let Err(why) = actions.forget(person.action_ids).await {
                    return Ok(error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("the person is erased, but the delivery log still names their actions: {why}; erase again once it can be written"),
                    ));
                }
            }
            Json(person.erased.to_json()).into_response()
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("no accepted event names this {kind}; there is nothing to erase (values are matched exactly, and an erased identity is unknown)"),
        ),
        Err(why) => error(StatusCode::SERVICE_UNAVAILABLE, why.to_string()),
    })
}

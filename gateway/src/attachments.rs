//! `POST /attachments`: merchants upload the files that commands refer to (e.g. the
//! screenshot of a Paykassma wallet transfer) before sending the command that names them.
//!
//! - Raw body: the bytes are the file; `Content-Type` is its type; the name comes from
//!   `?name=` (or the `x-file-name` header), `upload.bin` if absent.
//! - `multipart/form-data`: the first part that carries a file name (or is named `file`) is
//!   the file; its own content type and file name are kept.
//!
//! The file is stored with [`paystate_service::attachments::put`] (object named by its
//! SHA-256, so uploading the same file twice is one object) and the answer, `201` with the
//! [`Attachment`] JSON, is what goes into e.g. `confirm_transfer`. It is served on the
//! private listener and needs a `write` key (see [`crate::auth`]). Errors: 400
//! `empty_upload` / `invalid_upload`, 413 `upload_too_large` (over
//! [`ATTACHMENT_BYTES_MAX`]), 503 `storage_unavailable`.

use crate::limits::UPLOAD_BODY_BYTES_MAX;
use crate::ApiError;
use async_nats::jetstream::object_store::ObjectStore;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use paystate_events::command::Attachment;
use paystate_service::attachments::{put, ATTACHMENT_BYTES_MAX};
use serde::Deserialize;

/// Parts looked at in one multipart upload before giving up on finding the file.
const PARTS_MAX: usize = 16;
/// Longest file name or content type kept (commands cap their texts at 256 bytes).
const NAME_LEN_MAX: usize = 200;
/// Name of a file uploaded as a raw body without `?name=`.
const DEFAULT_FILE_NAME: &str = "upload.bin";
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// The upload route, over the attachment store (merged into the gateway's router).
pub fn routes(store: ObjectStore) -> Router {
    Router::new()
        .route("/attachments", post(upload))
        .layer(DefaultBodyLimit::max(UPLOAD_BODY_BYTES_MAX))
        .with_state(store)
}

#[derive(Debug, Default, Deserialize)]
struct UploadQuery {
    name: Option<String>,
}

/// One file as received.
struct File {
    name: String,
    content_type: String,
    bytes: Bytes,
}

async fn upload(
    State(store): State<ObjectStore>,
    Query(q): Query<UploadQuery>,
    req: Request,
) -> Response {
    let file = match read_file(q, req).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    if file.bytes.is_empty() {
        return ApiError::new(StatusCode::BAD_REQUEST, "empty_upload", "the file is empty")
            .into_response();
    }
    if file.bytes.len() > ATTACHMENT_BYTES_MAX {
        return too_large().into_response();
    }
    match put(&store, &file.name, &file.content_type, &file.bytes).await {
        Ok(attachment) => (StatusCode::CREATED, Json::<Attachment>(attachment)).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "attachment not stored");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", e).into_response()
        }
    }
}

async fn read_file(q: UploadQuery, req: Request) -> Result<File, ApiError> {
    let headers = req.headers().clone();
    let content_type = text_header(&headers, header::CONTENT_TYPE.as_str());
    if content_type
        .as_deref()
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("multipart/form-data"))
    {
        let form = Multipart::from_request(req, &())
            .await
            .map_err(|e| invalid(e.body_text()))?;
        return first_file(form).await;
    }
    let bytes = Bytes::from_request(req, &()).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            invalid(e.body_text())
        }
    })?;
    let name = q
        .name
        .or_else(|| text_header(&headers, "x-file-name"))
        .unwrap_or_else(|| DEFAULT_FILE_NAME.to_string());
    Ok(File {
        name: bounded(name)?,
        content_type: bounded(content_type.unwrap_or_else(|| DEFAULT_CONTENT_TYPE.into()))?,
        bytes,
    })
}

/// The first part with a file name (or named `file`).
async fn first_file(mut form: Multipart) -> Result<File, ApiError> {
    for _ in 0..PARTS_MAX {
        let field = form
            .next_field()
            .await
            .map_err(|e| invalid(e.body_text()))?
            .ok_or_else(|| invalid("no file part in the form".into()))?;
        if field.file_name().is_none() && field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().unwrap_or(DEFAULT_FILE_NAME).to_string();
        let content_type = field
            .content_type()
            .unwrap_or(DEFAULT_CONTENT_TYPE)
            .to_string();
        let bytes = field.bytes().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                invalid(e.body_text())
            }
        })?;
        return Ok(File {
            name: bounded(name)?,
            content_type: bounded(content_type)?,
            bytes,
        });
    }
    Err(invalid(format!(
        "no file part in the first {PARTS_MAX} parts"
    )))
}

fn text_header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn bounded(text: String) -> Result<String, ApiError> {
    if text.is_empty() || text.len() > NAME_LEN_MAX {
        return Err(invalid(format!(
            "file names and content types must be 1..={NAME_LEN_MAX} bytes"
        )));
    }
    Ok(text)
}

fn invalid(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_upload", message)
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload_too_large",
        format!("files are limited to {ATTACHMENT_BYTES_MAX} bytes"),
    )
}

//! Extractors that turn every malformed request into Raftka's error shape.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// A JSON body. Bad JSON, a missing field or a wrong type is a 400; an oversized body a 413;
/// a non-JSON content type a 415.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
            if !ct.contains("json") {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    format!("content-type '{ct}' is not JSON"),
                ));
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    "request body exceeds the node's limit",
                )
            } else {
                ApiError::bad_request(format!("could not read the body: {rej}"))
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// A JSON body that may be left out: an empty body or a JSON `null` reads as `T::default()`;
/// anything else is checked as [`ApiJson`].
pub struct ApiJsonOrDefault<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for ApiJsonOrDefault<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let empty = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0")
            || (req.headers().get(header::CONTENT_LENGTH).is_none()
                && req.headers().get(header::TRANSFER_ENCODING).is_none());
        if empty {
            return Ok(ApiJsonOrDefault(T::default()));
        }
        ApiJson::<Option<T>>::from_request(req, state)
            .await
            .map(|ApiJson(v)| ApiJsonOrDefault(v.unwrap_or_default()))
    }
}

/// Path parameters. A segment that is not valid UTF-8 or not percent-decodable, or that does
/// not parse as `T`, is a 400 in Raftka's error shape (axum's own rejection is plain text).
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e| ApiError::bad_request(format!("invalid path: {}", e.body_text())))
    }
}

/// Query parameters as raw strings; handlers parse each with a precise error.
pub struct ApiQuery(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for ApiQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
    }
}

impl ApiQuery {
    /// Parses an optional unsigned parameter; `code` is used for negative or non-numeric values.
    pub fn u64(&self, name: &str, code: ErrorCode) -> Result<Option<u64>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(v) => v.trim().parse::<u64>().map(Some).map_err(|_| {
                ApiError::new(
                    code,
                    format!("'{name}' must be a non-negative integer, got '{v}'"),
                )
            }),
        }
    }

    /// Parses an optional signed parameter.
    pub fn i64(&self, name: &str, code: ErrorCode) -> Result<Option<i64>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| {
                ApiError::new(code, format!("'{name}' must be an integer, got '{v}'"))
            }),
        }
    }
}

/// Parses a partition path segment.
pub fn parse_partition(raw: &str) -> Result<u32, ApiError> {
    raw.parse::<u32>().map_err(|_| {
        ApiError::new(
            ErrorCode::PartitionNotFound,
            format!("partition '{raw}' is not a non-negative integer"),
        )
    })
}

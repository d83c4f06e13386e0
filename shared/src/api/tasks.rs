//! `GET`/`POST /api/{user_id}/tasks`, `PATCH`/`DELETE /api/{user_id}/tasks/{task_id}`: the
//! user's tasks outside the chat, through the same task operations and input rules as the
//! assistant's tools, so the chat and the API can never disagree.

use lambda_http::{
    Body, Request, Response,
    http::{HeaderValue, StatusCode, header},
};
use serde::{Deserialize, Serialize, de::IntoDeserializer};

use crate::{
    app::{App, Uses},
    db::{
        self,
        tasks::{After, Changes, Outcome, StatusFilter, Task},
    },
    http::{self, ApiError},
    input::{self, InputError},
    tasks::{Cursor, Description, Title},
};

/// What these handlers' functions build at cold start: the database and token verification.
pub const USES: Uses = Uses::Tokens;

/// The `POST .../tasks` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTask {
    title: Title,
    #[serde(default)]
    description: Option<Description>,
}

/// The `PATCH .../tasks/{task_id}` body: any of the three, none of them `null`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskPatch {
    #[serde(default, deserialize_with = "input::present")]
    title: Option<Title>,
    #[serde(default, deserialize_with = "input::present")]
    description: Option<Description>,
    #[serde(default, deserialize_with = "input::present")]
    completed: Option<bool>,
}

#[derive(Serialize)]
struct TaskList {
    tasks: Vec<Task>,
    next_cursor: Option<String>,
    total: i64,
}

/// Lists the caller's tasks, newest first: `?status=all|pending|completed&limit=1..=100&cursor=`.
pub async fn list(app: &App, req: Request) -> Response<Body> {
    http::serve("list_tasks", req, |req| async move {
        let user = http::authenticate(app.verifier()?, &req).await?;
        // Read by the same derive as the list_tasks tool's argument.
        let status = http::query_param(&req, "status")
            .map(|raw| {
                StatusFilter::deserialize(raw.into_deserializer()).map_err(
                    |e: serde::de::value::Error| InputError::field("status", e.to_string()),
                )
            })
            .transpose()?
            .unwrap_or_default();
        let limit = input::bounded_int(http::query_param(&req, "limit"), "limit", 20, 1, 100)?;
        // `cursor=` (empty) asks for the first page, as no cursor does.
        let after = http::query_param(&req, "cursor")
            .filter(|token| !token.is_empty())
            .map(Cursor::decode)
            .transpose()
            .map_err(|reason| InputError::field("cursor", reason))?;
        let client = app.db.get().await?;
        // One row more than asked tells whether another page follows.
        let outcome =
            db::tasks::list(&client, &user, status, after.map(|c| c.0), limit + 1, None).await?;
        let mut page = Outcome::<Task>::read(&outcome)?;
        let next_cursor = if page.rows.len() as i64 > limit {
            page.rows.truncate(limit as usize);
            page.rows.last().map(|t| {
                Cursor(After {
                    created_at: t.created_at,
                    id: t.id,
                })
                .encode()
            })
        } else {
            None
        };
        Ok(http::json_response(
            StatusCode::OK,
            &TaskList {
                tasks: page.rows,
                next_cursor,
                total: page.total.unwrap_or_default(),
            },
        ))
    })
    .await
}

/// Adds a task: `{"title", "description"?}` → `201` with the task and its `ETag`.
pub async fn create(app: &App, req: Request) -> Response<Body> {
    http::serve("create_task", req, |req| async move {
        let user = http::authenticate(app.verifier()?, &req).await?;
        let NewTask { title, description } = json_body(app, &req)?;
        let description = description.unwrap_or_default();
        let client = app.db.get().await?;
        let outcome =
            db::tasks::add(&client, &user, title.as_str(), description.as_str(), None).await?;
        let task = Outcome::<Task>::read(&outcome)?
            .rows
            .pop()
            .ok_or(ApiError::Internal)?;
        Ok(task_response(StatusCode::CREATED, &task))
    })
    .await
}

/// Changes any of `title`, `description`, `completed` (at least one) → `200` with the task
/// and its `ETag`; with `If-Match` naming another version, `412` and nothing changes.
pub async fn update(app: &App, req: Request) -> Response<Body> {
    http::serve("update_task", req, |req| async move {
        let user = http::authenticate(app.verifier()?, &req).await?;
        let id = task_id(&req)?;
        let TaskPatch {
            title,
            description,
            completed,
        } = json_body(app, &req)?;
        if title.is_none() && description.is_none() && completed.is_none() {
            return Err(InputError::field(
                "body",
                "give at least one of title, description, completed",
            )
            .into());
        }
        let expected = req
            .headers()
            .get(header::IF_MATCH)
            .and_then(expected_version);
        let changes = Changes {
            title: title.as_ref().map(Title::as_str),
            description: description.as_ref().map(Description::as_str),
            completed,
        };
        let client = app.db.get().await?;
        let outcome =
            db::tasks::update(&client, &user, id, changes, expected.as_deref(), None).await?;
        let mut outcome = Outcome::<Task>::read(&outcome)?;
        match outcome.rows.pop() {
            Some(task) => Ok(task_response(StatusCode::OK, &task)),
            None if outcome.found == Some(true) => Err(ApiError::PreconditionFailed),
            None => Err(ApiError::TaskNotFound),
        }
    })
    .await
}

/// Deletes a task: `204`, or `404` and nothing deleted.
pub async fn delete(app: &App, req: Request) -> Response<Body> {
    http::serve("delete_task", req, |req| async move {
        let user = http::authenticate(app.verifier()?, &req).await?;
        let id = task_id(&req)?;
        let client = app.db.get().await?;
        let outcome = db::tasks::delete(&client, &user, id, None).await?;
        if Outcome::<Task>::read(&outcome)?.rows.is_empty() {
            return Err(ApiError::TaskNotFound);
        }
        let mut response = Response::new(Body::Empty);
        *response.status_mut() = StatusCode::NO_CONTENT;
        Ok(response)
    })
    .await
}

/// The body, within the size limit, as the fields `T` declares.
fn json_body<T: serde::de::DeserializeOwned>(app: &App, req: &Request) -> Result<T, ApiError> {
    let body = http::body(req, app.config.max_body_bytes)?;
    Ok(input::json(body)?)
}

/// The `{task_id}` path parameter: a positive whole number.
fn task_id(req: &Request) -> Result<i64, InputError> {
    http::path_param(req, "task_id")
        .and_then(|raw| raw.parse().ok())
        .filter(|id: &i64| *id > 0)
        .ok_or_else(|| InputError::field("task_id", "must be a positive whole number"))
}

/// The task's ETag: its version, which every change bumps.
fn etag(task: &Task) -> String {
    format!("\"v{}\"", task.version)
}

/// What `If-Match` asks for: `None` for `*` or an empty value (any current version), else
/// the versions it names; a value naming none of ours can match nothing, so `[0]`
/// (versions start at 1).
fn expected_version(value: &HeaderValue) -> Option<Vec<i32>> {
    let value = value.to_str().unwrap_or("\u{0}").trim();
    if value == "*" || value.is_empty() {
        return None;
    }
    let versions: Vec<i32> = value
        .split(',')
        .filter_map(|tag| {
            let tag = tag.trim();
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            tag.strip_prefix("\"v")?.strip_suffix('"')?.parse().ok()
        })
        .collect();
    Some(if versions.is_empty() {
        vec![0]
    } else {
        versions
    })
}

fn task_response(status: StatusCode, task: &Task) -> Response<Body> {
    let mut response = http::json_response(status, task);
    if let Ok(value) = HeaderValue::from_str(&etag(task)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_names_versions_or_anything() {
        let parse = |raw: &str| expected_version(&HeaderValue::from_str(raw).unwrap());
        assert_eq!(parse("\"v3\""), Some(vec![3]));
        assert_eq!(parse("W/\"v3\", \"v5\""), Some(vec![3, 5]));
        assert_eq!(parse("*"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("\"abc\""), Some(vec![0]));
    }
}

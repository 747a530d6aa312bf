//! EFFECTFUL: carrying out one instance's [`InstancePlan`] on CloudAMQP.
//!
//! Steps run in order: the recipient first (an alarm needs its id), then the alarms. A
//! refusal (a 4xx) is a problem of the instance and the other steps still run; what cannot
//! work for any instance (a refused API key, an API out of reach) ends the whole run.
//!
//! A `POST` whose answer was lost is never repeated blindly: the list is read again, and
//! the object is used if it is there now (our recipient by name and type, our alarm by type
//! with our recipient only), else it is created once more.

use secrecy::SecretString;

use super::plan::{InstancePlan, RECIPIENT_NAME, Step, is_ours, scrub};
use crate::cloudamqp::{ApiError, CloudAmqpClient, PostError};

/// What applying one instance's plan did.
#[derive(Debug, Default)]
pub struct Applied {
    /// One line per write done, e.g. `created alarm memory 684`.
    pub lines: Vec<String>,
    /// Writes CloudAMQP refused, or whose outcome is unknown: exit 1.
    pub problems: Vec<String>,
    /// A [fatal](is_fatal) error that stopped the run here (the steps after it not tried).
    pub fatal: Option<ApiError>,
}

/// How a `POST` ended when it did create its object.
enum Posted<T> {
    Created(T),
    /// The first answer was lost; listing found the object.
    FoundAfterLoss(T),
    /// The first answer was lost and listing did not find it: created on the second try.
    CreatedAgain(T),
}

impl<T> Posted<T> {
    fn into_parts(self) -> (T, &'static str) {
        match self {
            Self::Created(t) => (t, ""),
            Self::FoundAfterLoss(t) => (
                t,
                " (the answer to the first request was lost; listing found it, so it was not sent again)",
            ),
            Self::CreatedAgain(t) => (
                t,
                " (the answer to the first request was lost and listing did not find it: sent once more)",
            ),
        }
    }
}

/// Whether an error means no instance can be set up now: the key is refused, or CloudAMQP
/// stayed out of reach until the retry deadline.
pub fn is_fatal(error: &ApiError) -> bool {
    matches!(
        error.root(),
        ApiError::Unauthorized | ApiError::MissingApiKey | ApiError::Setup { .. }
    ) || error.is_transient()
}

/// A refusal as one short text: the status and CloudAMQP's words.
pub fn refusal(error: &ApiError) -> String {
    scrub(&match error {
        ApiError::BadRequest { message } => format!("HTTP 400 {message}"),
        ApiError::MoveRefused { message } | ApiError::InstanceBusy { message } => {
            format!("HTTP 422 {message}")
        }
        ApiError::NotFound { message } => format!("HTTP 404 {message}"),
        ApiError::Unexpected { status, message } => format!("HTTP {status} {message}"),
        other => other.to_string(),
    })
}

/// Carries out `plan` on `instance`; `url` is our recipient's value, token included. A
/// [fatal](is_fatal) error stops it, with what was done so far.
pub async fn apply(
    client: &CloudAmqpClient,
    instance: u64,
    plan: &InstancePlan,
    url: &SecretString,
) -> Applied {
    let mut applied = Applied::default();
    if let Err(error) = apply_steps(client, instance, plan, url, &mut applied).await {
        applied.fatal = Some(error);
    }
    applied
}

async fn apply_steps(
    client: &CloudAmqpClient,
    instance: u64,
    plan: &InstancePlan,
    url: &SecretString,
    applied: &mut Applied,
) -> Result<(), ApiError> {
    let mut recipient = None;
    for step in &plan.steps {
        match step {
            Step::CreateRecipient => {
                let outcome = post_without_duplicate(
                    async || {
                        client
                            .create_webhook_recipient(instance, RECIPIENT_NAME, url)
                            .await
                    },
                    async || Ok(client.recipients(instance).await?.into_iter().find(is_ours)),
                )
                .await;
                match outcome {
                    Ok(posted) => {
                        let (created, how) = posted.into_parts();
                        applied.lines.push(format!(
                            "created recipient {RECIPIENT_NAME} {}{how}",
                            created.id
                        ));
                        recipient = Some(created.id);
                    }
                    Err(error) => {
                        fail(
                            applied,
                            error,
                            &format!("creating recipient {RECIPIENT_NAME}"),
                        )?;
                    }
                }
            }
            Step::UpdateRecipient { id, .. } => {
                match client
                    .update_webhook_recipient(instance, *id, RECIPIENT_NAME, url)
                    .await
                {
                    Ok(_) => {
                        applied
                            .lines
                            .push(format!("updated recipient {RECIPIENT_NAME} {id}"));
                        recipient = Some(*id);
                    }
                    Err(error) => fail(
                        applied,
                        PostError::Api(error),
                        &format!("updating recipient {RECIPIENT_NAME} {id}"),
                    )?,
                }
            }
            Step::RecipientUnchanged { id } => recipient = Some(*id),
            Step::CreateAlarm(alarm) => {
                let Some(rid) = recipient else {
                    applied.problems.push(format!(
                        "alarm {} not created: there is no {RECIPIENT_NAME} recipient to send it to",
                        alarm.kind
                    ));
                    continue;
                };
                let spec = alarm.spec(rid);
                let outcome = post_without_duplicate(
                    async || client.create_alarm(instance, &spec).await,
                    async || {
                        Ok(client
                            .alarms(instance)
                            .await?
                            .into_iter()
                            .find(|a| a.kind == spec.kind && a.recipients == [rid]))
                    },
                )
                .await;
                match outcome {
                    Ok(posted) => {
                        let (created, how) = posted.into_parts();
                        applied
                            .lines
                            .push(format!("created alarm {} {}{how}", alarm.kind, created.id));
                    }
                    Err(error) => {
                        fail(applied, error, &format!("creating alarm {}", alarm.kind))?;
                    }
                }
            }
            Step::UpdateAlarm { id, alarm, .. } => {
                let Some(rid) = recipient else {
                    applied.problems.push(format!(
                        "alarm {} {id} not updated: there is no {RECIPIENT_NAME} recipient to send it to",
                        alarm.kind
                    ));
                    continue;
                };
                match client.update_alarm(instance, *id, &alarm.spec(rid)).await {
                    Ok(_) => applied
                        .lines
                        .push(format!("updated alarm {} {id}", alarm.kind)),
                    Err(error) => fail(
                        applied,
                        PostError::Api(error),
                        &format!("updating alarm {} {id}", alarm.kind),
                    )?,
                }
            }
            Step::AlarmUnchanged { .. } => {}
        }
    }
    Ok(())
}

/// Records a failed write as a problem, or ends the run when no write can succeed now.
fn fail(applied: &mut Applied, error: PostError, what: &str) -> Result<(), ApiError> {
    match error {
        PostError::Api(error) if is_fatal(&error) => Err(error),
        PostError::Api(error) => {
            applied
                .problems
                .push(format!("CloudAMQP refused {what}: {}", refusal(&error)));
            Ok(())
        }
        PostError::Unanswered(error) => {
            applied.problems.push(scrub(&format!(
                "{what}: the answer was lost twice ({error}); it may exist now: run setup again, which lists before it creates"
            )));
            Ok(())
        }
    }
}

/// `post`, and after a lost answer `find` before posting once more.
async fn post_without_duplicate<T>(
    post: impl AsyncFn() -> Result<T, PostError>,
    find: impl AsyncFn() -> Result<Option<T>, ApiError>,
) -> Result<Posted<T>, PostError> {
    match post().await {
        Ok(created) => Ok(Posted::Created(created)),
        Err(PostError::Unanswered(error)) => {
            tracing::warn!(%error, "a POST's answer was lost: listing before sending it again");
            match find().await? {
                Some(found) => Ok(Posted::FoundAfterLoss(found)),
                None => post().await.map(Posted::CreatedAgain),
            }
        }
        Err(error) => Err(error),
    }
}

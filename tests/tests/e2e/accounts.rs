//! Codex accounts per node, end to end: a usage limit and a rejected key reach the topic in so
//! many words (with the time the limit resets, as Codex gives it), with the real Codex TUI
//! against the fake model's `429 usage_limit_reached` and `401`.

use crate::center::CenterEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_limit_and_auth_failure_are_reported_in_the_topic() {
    let env = CenterEnv::start("acct-limit").await;
    let thread = env.bound_topic("Limits", "limit: please").await;
    let limit = env
        .message(thread, "the usage-limit notice", |m| {
            m.text().starts_with("⚠️ Codex hit a usage limit")
        })
        .await;
    let text = limit.text();
    // Codex shows when the limit resets (in the node's local time): "… try again at 3:43 PM."
    assert!(text.contains("try again at "), "{text}");
    assert!(text.contains(" AM") || text.contains(" PM"), "{text}");

    // The session is still usable: the next message is answered.
    env.say(thread, "unauthorized: please");
    let auth = env
        .message(thread, "the auth notice", |m| {
            m.text().starts_with("⚠️ Codex could not authenticate")
        })
        .await;
    assert!(auth.text().contains("401"), "{}", auth.text());
    env.say(thread, "echo: still here");
    env.message(thread, "an answer after the failures", |m| {
        m.text() == "still here"
    })
    .await;
}

//! `center backfill`: a topic gets the last answers of its session again, from the transcript,
//! marked as re-sent, oldest first.

use crate::center::CenterEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_resends_the_last_answers() {
    let env = CenterEnv::start("backfill").await;
    let thread = env.bound_topic("Backfill", "echo: the first answer").await;
    env.message(thread, "first", |m| m.text() == "the first answer")
        .await;
    env.say(thread, "echo: the second answer");
    env.message(thread, "second", |m| m.text() == "the second answer")
        .await;
    let backfill = |turns: &str| {
        let out = env.center_cli(&["backfill", "--topic", &thread.to_string(), "--turns", turns]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(backfill("2").contains("re-sent 2 answer(s)"));
    let resent: Vec<String> = env
        .texts_in(thread)
        .into_iter()
        .filter(|t| t.starts_with("↩️ Re-sent answer"))
        .collect();
    assert_eq!(resent.len(), 2, "{resent:?}");
    assert!(resent[0].ends_with("\n\nthe first answer"), "{resent:?}");
    assert!(resent[1].ends_with("\n\nthe second answer"), "{resent:?}");
    assert!(backfill("1").contains("re-sent 1 answer(s)"));
    let last = env.texts_in(thread).pop().unwrap();
    assert!(last.ends_with("the second answer"), "{last}");
}

//! Owned chats and topics that go away: the bot serves the groups an allowed user added it to
//! (not every group an allowed user writes in), and a topic deleted or closed by someone else
//! never takes its window away silently — the allowed users are told in private.

use std::time::Duration;

use crate::center::CenterEnv;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_is_served_only_when_an_allowed_user_added_the_bot() {
    let env = CenterEnv::start("o-owned").await;
    let private = env.tg.create_private_chat(&env.alice, false);
    // Mallory (not allowed) adds the bot to her group; Alice writes there.
    let mallory = env.tg.create_user("Mallory");
    let theirs = env.tg.create_forum("Mallory's group");
    env.tg.add_bot(&mallory, theirs).unwrap();
    let thread = env
        .tg
        .create_topic(&mallory, theirs, "t")
        .unwrap()
        .thread_id
        .unwrap();
    let first = env.say_in(theirs, thread, "echo: anyone?");
    env.say_in(theirs, thread, "echo: hello?");
    // Alice learns why in private, once; the group sees nothing and no window starts.
    let told = env
        .tg
        .wait_for_message("why the group is not served", WAIT, |m| {
            m.chat_id == private && m.text().contains("stay silent")
        })
        .await
        .unwrap();
    assert!(told.text().contains(&theirs.to_string()), "{}", told.text());
    env.tg.wait_until_confirmed(first + 1, WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(env.tg.messages_in(theirs, None).is_empty());
    let hints = env
        .tg
        .messages_in(private, None)
        .iter()
        .filter(|m| m.text().contains("stay silent"))
        .count();
    assert_eq!(hints, 1, "told once per group");
    assert!(env.tmux.tmux(&["list-windows", "-a"]).is_err());

    // A group Alice adds the bot to is served.
    let ours = env.tg.create_forum("Alice's second group");
    env.tg.add_bot(&env.alice, ours).unwrap();
    let bound = env.bound_topic_in(ours, "ours", "echo: served").await;
    env.message_in(ours, bound, "answer", |m| m.text() == "served")
        .await;

    // Removed from a group, the bot forgets it: added back by Mallory, it stays silent there.
    let owned_before = env.tg.create_forum("Third");
    env.tg.add_bot(&env.alice, owned_before).unwrap();
    env.tg.remove_bot(&mallory, owned_before).unwrap();
    env.tg.add_bot(&mallory, owned_before).unwrap();
    let t = env
        .tg
        .create_topic(&env.alice, owned_before, "t")
        .unwrap()
        .thread_id
        .unwrap();
    let last = env.say_in(owned_before, t, "echo: still there?");
    env.tg.wait_until_confirmed(last, WAIT).await.unwrap();
    env.tg
        .wait_for_message("why the third group is not served", WAIT, |m| {
            m.chat_id == private && m.text().contains(&owned_before.to_string())
        })
        .await
        .unwrap();
    assert!(env.tg.messages_in(owned_before, Some(t)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_deleted_by_an_admin_is_reported_to_the_owner_in_private() {
    let env = CenterEnv::start("o-deleted").await;
    let private = env.tg.create_private_chat(&env.alice, false);
    let thread = env.bound_topic("doomed", "echo: hi").await;
    env.message(thread, "answer", |m| m.text() == "hi").await;
    // A slow turn is running when an admin deletes the topic; its answer finds no topic.
    env.say(thread, "slow: 2");
    env.message(thread, "delivered", |m| m.text().starts_with("✓ Delivered"))
        .await;
    env.tg.delete_topic(env.chat, thread).unwrap();
    let told = env
        .tg
        .wait_for_message("the owner is told", WAIT, |m| {
            m.chat_id == private && m.text().contains("was deleted")
        })
        .await
        .unwrap();
    assert!(
        told.text().contains(&env.project.display().to_string()),
        "{}",
        told.text()
    );
    env.project_window_closes(Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_closed_by_an_admin_who_is_not_allowed_ends_its_binding_and_the_owner_is_told() {
    let env = CenterEnv::start("o-closed").await;
    let private = env.tg.create_private_chat(&env.alice, false);
    let thread = env.bound_topic("closed", "echo: hi").await;
    env.message(thread, "answer", |m| m.text() == "hi").await;
    let admin = env.tg.create_user("Admin");
    env.tg.close_topic(&admin, env.chat, thread).unwrap();
    let told = env
        .tg
        .wait_for_message("the owner is told", WAIT, |m| {
            m.chat_id == private && m.text().contains("not an allowed user")
        })
        .await
        .unwrap();
    assert!(
        told.text().contains(&admin.id.to_string()),
        "{}",
        told.text()
    );
    env.project_window_closes(Duration::from_secs(20)).await;
    // Nothing was said in the group itself.
    assert!(
        env.texts_in(thread)
            .iter()
            .all(|t| !t.contains("not an allowed user")),
        "{:?}",
        env.texts_in(thread)
    );
}

//! Drives the fake over real HTTP with reqwest, the way the center's HTTP client will.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;

pub(super) const TOKEN: &str = "123456:TEST-token_abc";

/// A Bot API client on a fresh fake (shared with the media tests).
pub(super) struct Api {
    pub(super) fake: FakeTelegram,
    pub(super) http: reqwest::Client,
}

impl Api {
    pub(super) async fn start() -> Self {
        Self {
            fake: FakeTelegram::start(TOKEN).await.unwrap(),
            http: reqwest::Client::new(),
        }
    }

    /// POSTs a JSON body; returns the HTTP status and the response body.
    pub(super) async fn call(&self, method: &str, body: Value) -> (u16, Value) {
        let url = format!("{}/{method}", self.fake.bot_url());
        let resp = self.http.post(url).json(&body).send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    pub(super) async fn ok(&self, method: &str, body: Value) -> Value {
        let (status, v) = self.call(method, body).await;
        assert_eq!(status, 200, "{method} failed: {v}");
        assert_eq!(v["ok"], true);
        v["result"].clone()
    }

    /// Calls a method that must fail; returns the description.
    pub(super) async fn err(&self, method: &str, body: Value) -> String {
        let (status, v) = self.call(method, body).await;
        assert_ne!(status, 200, "{method} unexpectedly succeeded: {v}");
        assert_eq!(v["ok"], false);
        assert_eq!(v["error_code"], status);
        v["description"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn auth_routing_and_get_me() {
    let api = Api::start().await;
    let url = format!("{}/bot123456:wrong/getMe", api.fake.api_url());
    let resp = api.http.get(url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({ "ok": false, "error_code": 401, "description": "Unauthorized" })
    );
    let (status, v) = api.call("sendCarrierPigeon", json!({})).await;
    assert_eq!(
        (status, v["description"].as_str()),
        (404, Some("Not Found"))
    );

    let me = api.ok("getme", json!({})).await;
    assert_eq!(me["id"], 123_456);
    assert_eq!(me["is_bot"], true);
    assert!(
        api.err("getMe", json!({ "x": 1 }))
            .await
            .contains("fake_telegram")
    );

    // getChatMember: the bot's own rights, in Telegram's shapes and error order.
    let bot = api.fake.bot_id();
    let rights = api.fake.create_forum("Rights");
    let m = api
        .ok(
            "getChatMember",
            json!({ "chat_id": rights, "user_id": bot }),
        )
        .await;
    assert_eq!(m["status"], "administrator");
    assert_eq!(m["user"]["id"], bot);
    assert_eq!(
        (m["can_manage_topics"].clone(), m["can_be_edited"].clone()),
        (json!(true), json!(false))
    );
    api.fake.set_bot_can_manage_topics(rights, false).unwrap();
    let m = api
        .ok(
            "getChatMember",
            json!({ "chat_id": rights, "user_id": bot }),
        )
        .await;
    assert_eq!(m["can_manage_topics"], false);
    let err = |body| api.err("getChatMember", body);
    assert_eq!(
        err(json!({ "chat_id": 1, "user_id": "x" })).await,
        "Bad Request: invalid user_id specified"
    );
    assert_eq!(
        err(json!({ "chat_id": -5, "user_id": bot })).await,
        "Bad Request: chat not found"
    );
    assert!(
        err(json!({ "chat_id": rights, "user_id": 42 }))
            .await
            .contains("fake_telegram")
    );

    // GET with query parameters works like POST.
    let forum = api.fake.create_forum("Fleet");
    let url = format!("{}/sendMessage?chat_id={forum}&text=hi", api.fake.bot_url());
    let v: Value = api
        .http
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["result"]["text"], "hi");
    assert_eq!(v["result"]["chat"]["is_forum"], true);
}

#[tokio::test]
async fn html_parse_mode_is_validated() {
    let api = Api::start().await;
    let chat = api.fake.create_forum("Fleet");
    let send = |text: &str| json!({ "chat_id": chat, "text": text, "parse_mode": "HTML" });

    let m = api
        .ok(
            "sendMessage",
            send("<b>bold <i>both</i></b> a &lt; b &amp; c"),
        )
        .await;
    assert_eq!(m["text"], "bold both a < b & c");
    assert_eq!(
        m["entities"],
        json!([{ "type": "bold", "offset": 0, "length": 9 }, { "type": "italic", "offset": 5, "length": 4 }])
    );
    let stored = api
        .fake
        .bot_message(chat, m["message_id"].as_i64().unwrap())
        .unwrap();
    assert_eq!(
        stored.current.source,
        "<b>bold <i>both</i></b> a &lt; b &amp; c"
    );
    assert_eq!(stored.current.parse_mode.as_deref(), Some("HTML"));

    assert_eq!(
        api.err("sendMessage", send("<b><i>x</b></i>")).await,
        "Bad Request: can't parse entities: Unmatched end tag at byte offset 7, expected \"</i>\", found \"</b>\""
    );
    assert_eq!(
        api.err("sendMessage", send("if a < b")).await,
        "Bad Request: can't parse entities: Unsupported start tag \"\" at byte offset 5"
    );
    assert!(
        api.err("sendMessage", send("fish & chips"))
            .await
            .starts_with("Bad Request: can't parse entities: ")
    );
    assert_eq!(
        api.err("sendMessage", send("<b>open")).await,
        "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\""
    );

    // The limit applies to the text after parsing, in UTF-16 units.
    let escaped = "&lt;".repeat(4096);
    assert_eq!(
        api.ok("sendMessage", send(&escaped)).await["text"]
            .as_str()
            .unwrap()
            .len(),
        4096
    );
    let long = format!("<b>{}</b>", "a".repeat(4097));
    assert_eq!(
        api.err("sendMessage", send(&long)).await,
        "Bad Request: message is too long"
    );
    let emoji = "😀".repeat(2049); // 4098 UTF-16 units, 2049 chars
    assert_eq!(
        api.err("sendMessage", send(&emoji)).await,
        "Bad Request: message is too long"
    );

    assert_eq!(
        api.err("sendMessage", json!({ "chat_id": chat, "text": "" }))
            .await,
        "Bad Request: message text is empty"
    );
    assert_eq!(
        api.err("sendMessage", json!({ "chat_id": 42, "text": "x" }))
            .await,
        "Bad Request: chat not found"
    );
    assert_eq!(
        api.err(
            "sendMessage",
            json!({ "chat_id": chat, "text": "x", "parse_mode": "HTMLX" })
        )
        .await,
        "Bad Request: unsupported parse_mode"
    );
}

#[tokio::test]
async fn inline_keyboards_edits_and_not_modified() {
    let api = Api::start().await;
    let chat = api.fake.create_forum("Fleet");
    let kb = |data: &str| json!({ "inline_keyboard": [[{ "text": "Go", "callback_data": data }]] });

    let data64 = "x".repeat(64);
    let m = api
        .ok(
            "sendMessage",
            json!({ "chat_id": chat, "text": "pick", "reply_markup": kb(&data64) }),
        )
        .await;
    let id = m["message_id"].as_i64().unwrap();
    assert_eq!(m["reply_markup"], kb(&data64));
    let data65 = "é".repeat(33); // 66 bytes, 33 characters
    assert_eq!(
        api.err(
            "sendMessage",
            json!({ "chat_id": chat, "text": "pick", "reply_markup": kb(&data65) })
        )
        .await,
        "Bad Request: BUTTON_DATA_INVALID"
    );
    assert_eq!(
        api.err("sendMessage", json!({ "chat_id": chat, "text": "t", "reply_markup": { "inline_keyboard": [[{ "text": "Go" }]] } })).await,
        "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
    );

    let edit = |text: &str, markup: Option<Value>| {
        let mut b = json!({ "chat_id": chat, "message_id": id, "text": text });
        if let Some(markup) = markup {
            b["reply_markup"] = markup;
        }
        b
    };
    assert_eq!(
        api.err("editMessageText", edit("pick", Some(kb(&data64))))
            .await,
        "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message"
    );
    // Same text, keyboard omitted: Telegram removes the keyboard, so this is a change.
    let edited = api.ok("editMessageText", edit("pick", None)).await;
    assert!(edited.get("reply_markup").is_none());
    assert!(edited["edit_date"].is_i64());
    // reply_markup as a JSON string (form-style) is accepted too.
    api.ok(
        "editMessageReplyMarkup",
        json!({ "chat_id": chat, "message_id": id, "reply_markup": kb("a").to_string() }),
    )
    .await;
    let stored = api.fake.bot_message(chat, id).unwrap();
    assert_eq!(stored.history.len(), 2);
    assert_eq!(stored.buttons()[0].callback_data.as_deref(), Some("a"));

    assert_eq!(
        api.err(
            "editMessageText",
            json!({ "chat_id": chat, "message_id": 999, "text": "x" })
        )
        .await,
        "Bad Request: message to edit not found"
    );
    api.ok(
        "deleteMessage",
        json!({ "chat_id": chat, "message_id": id }),
    )
    .await;
    assert_eq!(
        api.err(
            "deleteMessage",
            json!({ "chat_id": chat, "message_id": id })
        )
        .await,
        "Bad Request: message to delete not found"
    );
    assert_eq!(
        api.err("editMessageText", edit("new", None)).await,
        "Bad Request: message to edit not found"
    );
}

#[tokio::test]
async fn topics_and_thread_not_found() {
    let api = Api::start().await;
    let fake = &api.fake;
    let chat = fake.create_forum("Fleet");
    let alice = fake.create_user("Alice");
    let topic = fake
        .create_topic(&alice, chat, "build")
        .unwrap()
        .thread_id
        .unwrap();
    let send = |thread: i64| json!({ "chat_id": chat, "message_thread_id": thread, "text": "hi" });

    let m = api.ok("sendMessage", send(topic)).await;
    assert_eq!(
        (
            m["message_thread_id"].as_i64(),
            m["is_topic_message"].as_bool()
        ),
        (Some(topic), Some(true))
    );
    assert_eq!(fake.messages_in(chat, Some(topic)).len(), 1);
    for bad in [1, 12_345] {
        assert_eq!(
            api.err("sendMessage", send(bad)).await,
            "Bad Request: message thread not found"
        );
    }
    fake.delete_topic(chat, topic).unwrap();
    assert_eq!(
        api.err("sendMessage", send(topic)).await,
        "Bad Request: message thread not found"
    );
    assert!(
        fake.messages_in(chat, Some(topic)).is_empty(),
        "deleting a topic deletes its messages"
    );

    // Bot-managed topics.
    let t = api
        .ok(
            "createForumTopic",
            json!({ "chat_id": chat, "name": "  deploy  " }),
        )
        .await;
    assert_eq!(t["name"], "deploy");
    let thread = t["message_thread_id"].as_i64().unwrap();
    let by_id = json!({ "chat_id": chat, "message_thread_id": thread });
    api.ok("closeForumTopic", by_id.clone()).await;
    assert_eq!(
        api.err("closeForumTopic", by_id.clone()).await,
        "Bad Request: TOPIC_NOT_MODIFIED"
    );
    assert_eq!(
        api.err("createForumTopic", json!({ "chat_id": chat, "name": " " }))
            .await,
        "Bad Request: name must be non-empty"
    );
    api.ok("deleteForumTopic", by_id.clone()).await;
    assert_eq!(
        api.err("reopenForumTopic", by_id).await,
        "Bad Request: message thread not found"
    );

    // A basic group ignores message_thread_id, like the real server.
    let group = fake.create_group("Plain");
    let m = api
        .ok(
            "sendMessage",
            json!({ "chat_id": group, "message_thread_id": 77, "text": "x" }),
        )
        .await;
    assert!(m.get("message_thread_id").is_none());
    assert_eq!(
        api.err("createForumTopic", json!({ "chat_id": group, "name": "x" }))
            .await,
        "Bad Request: the chat is not a forum"
    );
    let dm = fake.create_private_chat(&alice, true);
    let t = api
        .ok(
            "createForumTopic",
            json!({ "chat_id": dm, "name": "dm topic" }),
        )
        .await;
    assert_eq!(
        api.err(
            "closeForumTopic",
            json!({ "chat_id": dm, "message_thread_id": t["message_thread_id"] })
        )
        .await,
        "Bad Request: the chat is not a supergroup forum"
    );
}

#[tokio::test]
async fn flood_control_answers_429() {
    let api = Api::start().await;
    let chat = api.fake.create_forum("Fleet");
    let msg = json!({ "chat_id": chat, "text": "x" });

    api.fake.force_retry_after(1, 7);
    let (status, v) = api.call("sendMessage", msg.clone()).await;
    assert_eq!(status, 429);
    assert_eq!(
        v,
        json!({ "ok": false, "error_code": 429, "description": "Too Many Requests: retry after 7", "parameters": { "retry_after": 7 } })
    );
    api.ok("sendMessage", msg.clone()).await;

    api.fake.set_flood_limits(Some(FloodLimits::default()));
    for _ in 0..3 {
        api.ok("sendMessage", msg.clone()).await;
    }
    let (status, v) = api.call("sendMessage", msg.clone()).await;
    assert_eq!(status, 429);
    assert!(v["parameters"]["retry_after"].as_u64().unwrap() >= 1);
    // Chat actions are not limited; edits are.
    api.ok(
        "sendChatAction",
        json!({ "chat_id": chat, "action": "typing" }),
    )
    .await;
    let (status, _) = api
        .call(
            "editMessageText",
            json!({ "chat_id": chat, "message_id": 2, "text": "y" }),
        )
        .await;
    assert_eq!(status, 429);
    assert_eq!(api.fake.count_429(), 3);
    let reasons: Vec<_> = api.fake.flood_events().iter().map(|e| e.reason).collect();
    assert_eq!(
        reasons,
        [FloodReason::Forced, FloodReason::Chat, FloodReason::Chat]
    );
}

#[tokio::test]
async fn long_poll_wakes_on_injection_and_offset_confirms() {
    let api = Api::start().await;
    let fake = api.fake.clone();
    let chat = fake.create_forum("Fleet");
    let alice = fake.create_user("Alice");
    let topic = fake.create_topic(&alice, chat, "t").unwrap();

    // The topic creation is already queued: returned at once.
    let ups = api.ok("getUpdates", json!({ "timeout": 30 })).await;
    assert_eq!(ups[0]["update_id"], topic.update_id);
    assert_eq!(ups[0]["message"]["forum_topic_created"]["name"], "t");

    let started = tokio::time::Instant::now();
    let poll = tokio::spawn({
        let http = api.http.clone();
        let url = format!("{}/getUpdates", fake.bot_url());
        let offset = topic.update_id + 1;
        async move {
            let body = json!({ "offset": offset, "timeout": 30 });
            http.post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    });
    // Inject once the poll is waiting (it confirmed the topic update on arrival).
    fake.wait_until_confirmed(topic.update_id, Duration::from_secs(5))
        .await
        .unwrap();
    let sent = fake
        .send_text(&alice, chat, topic.thread_id, "/status now")
        .unwrap();
    let v = poll.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "long poll did not wake"
    );
    let msg = &v["result"][0]["message"];
    assert_eq!(v["result"][0]["update_id"], sent.update_id);
    assert_eq!(msg["message_thread_id"], topic.thread_id.unwrap());
    assert_eq!(msg["is_topic_message"], true);
    assert_eq!(
        msg["entities"],
        json!([{ "type": "bot_command", "offset": 0, "length": 7 }])
    );
    assert_eq!(msg["reply_to_message"]["forum_topic_created"]["name"], "t");

    // Not confirmed yet: delivered again; confirmed: gone.
    assert_eq!(
        api.ok("getUpdates", json!({}))
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let ups = api
        .ok(
            "getUpdates",
            json!({ "offset": sent.update_id + 1, "timeout": 0 }),
        )
        .await;
    assert_eq!(ups, json!([]));
    assert_eq!(fake.inspect(|v| v.pending_updates()), 0);
}

#[tokio::test]
async fn second_poll_terminates_the_first() {
    let api = Api::start().await;
    let first = tokio::spawn({
        let http = api.http.clone();
        let url = format!("{}/getUpdates", api.fake.bot_url());
        async move {
            let resp = http
                .post(url)
                .json(&json!({ "timeout": 30 }))
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    });
    api.fake
        .wait_for("the first poll to start", Duration::from_secs(5), |v| {
            (v.polls_started() == 1).then_some(())
        })
        .await
        .unwrap();
    assert_eq!(
        api.ok("getUpdates", json!({ "timeout": 0 })).await,
        json!([])
    );
    let (status, v) = first.await.unwrap();
    assert_eq!(status, 409);
    assert_eq!(
        v["description"],
        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
    );
}

#[tokio::test]
async fn callback_queries_round_trip() {
    let api = Api::start().await;
    let fake = &api.fake;
    let alice = fake.create_user("Alice");
    let dm = fake.create_private_chat(&alice, false);
    let markup = json!({ "inline_keyboard": [[{ "text": "Yes", "callback_data": "approve:1" }]] });
    let m = api
        .ok(
            "sendMessage",
            json!({ "chat_id": dm, "text": "Run it?", "reply_markup": markup }),
        )
        .await;
    let id = m["message_id"].as_i64().unwrap();

    assert!(fake.press_button(&alice, dm, id, "nope").is_err());
    let pressed = fake.press_button(&alice, dm, id, "approve:1").unwrap();
    let ups = api.ok("getUpdates", json!({})).await;
    let q = &ups[0]["callback_query"];
    assert_eq!(q["data"], "approve:1");
    assert_eq!(q["message"]["message_id"], id);
    assert_eq!(q["from"]["id"], alice.id);
    let qid = pressed.query_id.unwrap();
    assert_eq!(
        api.err(
            "answerCallbackQuery",
            json!({ "callback_query_id": qid, "text": "x".repeat(201) })
        )
        .await,
        "Bad Request: MESSAGE_TOO_LONG"
    );
    api.ok(
        "answerCallbackQuery",
        json!({ "callback_query_id": qid, "text": "Approved" }),
    )
    .await;
    assert_eq!(
        api.err("answerCallbackQuery", json!({ "callback_query_id": qid }))
            .await,
        "Bad Request: query is too old and response timeout expired or query ID is invalid"
    );
    assert_eq!(fake.callback_answers()[0].text.as_deref(), Some("Approved"));
}

#[tokio::test]
async fn multipart_upload_and_file_download() {
    let api = Api::start().await;
    let fake = &api.fake;
    let chat = fake.create_forum("Fleet");
    let alice = fake.create_user("Alice");
    let topic = fake
        .create_topic(&alice, chat, "files")
        .unwrap()
        .thread_id
        .unwrap();
    let doc = b"fn main() {}\n".repeat(100);

    let form = reqwest::multipart::Form::new()
        .text("chat_id", chat.to_string())
        .text("message_thread_id", topic.to_string())
        .text("caption", "<b>log</b>")
        .text("parse_mode", "HTML")
        .text("document", "attach://f1")
        .part(
            "f1",
            reqwest::multipart::Part::bytes(doc.clone())
                .file_name("main.rs")
                .mime_str("text/plain")
                .unwrap(),
        );
    let url = format!("{}/sendDocument", fake.bot_url());
    let v: Value = api
        .http
        .post(&url)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["result"]["caption"], "log");
    assert_eq!(v["result"]["document"]["file_name"], "main.rs");
    let file_id = v["result"]["document"]["file_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sent = fake.messages_in(chat, Some(topic));
    assert_eq!(sent[0].media.as_ref().unwrap().bytes, doc);

    let file = api.ok("getFile", json!({ "file_id": file_id })).await;
    let url = format!(
        "{}/file/bot{TOKEN}/{}",
        fake.api_url(),
        file["file_path"].as_str().unwrap()
    );
    let body = api
        .http
        .get(url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.as_ref(), doc.as_slice());

    // Photos must be images; files the users send can be downloaded by the bot.
    let photo = |bytes: Vec<u8>| {
        reqwest::multipart::Form::new()
            .text("chat_id", chat.to_string())
            .part(
                "photo",
                reqwest::multipart::Part::bytes(bytes).file_name("p.png"),
            )
    };
    let url = format!("{}/sendPhoto", fake.bot_url());
    let v: Value = api
        .http
        .post(&url)
        .multipart(photo(b"not an image".to_vec()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["description"], "Bad Request: IMAGE_PROCESS_FAILED");
    let v: Value = api
        .http
        .post(&url)
        .multipart(photo(sample_png(4, 3, [9, 9, 9])))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            v["result"]["photo"][0]["width"].as_u64(),
            v["result"]["photo"][0]["height"].as_u64()
        ),
        (Some(4), Some(3))
    );

    let big = fake
        .send_document(
            &alice,
            chat,
            Some(topic),
            "big.bin",
            "application/octet-stream",
            vec![0u8; (20 << 20) + 1],
            None,
        )
        .unwrap();
    assert_eq!(
        api.err("getFile", json!({ "file_id": big.file_id.unwrap() }))
            .await,
        "Bad Request: file is too big"
    );
    let voice = fake
        .send_voice(&alice, chat, Some(topic), vec![1u8, 2, 3], 2)
        .unwrap();
    let file = api
        .ok("getFile", json!({ "file_id": voice.file_id.unwrap() }))
        .await;
    assert_eq!(file["file_size"], 3);
}

#[tokio::test]
async fn commands_and_form_bodies() {
    let api = Api::start().await;
    let url = format!("{}/setMyCommands", api.fake.bot_url());
    let commands = json!([{ "command": "new", "description": "Start a session" }]).to_string();
    let v: Value = api
        .http
        .post(&url)
        .form(&[("commands", commands)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["result"], true, "{v}");
    assert_eq!(
        api.ok("getMyCommands", json!({})).await,
        json!([{ "command": "new", "description": "Start a session" }])
    );
    assert_eq!(
        api.fake.inspect(|v| v.commands(None, "")),
        vec![("new".to_owned(), "Start a session".to_owned())]
    );
    let bad = |c: &str, d: &str| json!({ "commands": [{ "command": c, "description": d }] });
    assert_eq!(
        api.err("setMyCommands", bad("New", "x")).await,
        "Bad Request: BOT_COMMAND_INVALID"
    );
    assert_eq!(
        api.err("setMyCommands", bad(&"a".repeat(33), "x")).await,
        "Bad Request: command length must not exceed 32"
    );
    assert_eq!(
        api.err("setMyCommands", bad("ok", " ")).await,
        "Bad Request: command description must be non-empty"
    );
    let many: Vec<Value> = (0..101)
        .map(|i| json!({ "command": format!("c{i}"), "description": "d" }))
        .collect();
    assert_eq!(
        api.err("setMyCommands", json!({ "commands": many })).await,
        "Bad Request: BOT_COMMANDS_TOO_MUCH"
    );
}

#[tokio::test]
async fn wait_for_wakes_on_bot_messages() {
    let api = Api::start().await;
    let chat = api.fake.create_forum("Fleet");
    let waiter = tokio::spawn({
        let fake = api.fake.clone();
        async move {
            fake.wait_for_message("a reply", Duration::from_secs(5), |m| m.text() == "done")
                .await
        }
    });
    api.ok("sendMessage", json!({ "chat_id": chat, "text": "working" }))
        .await;
    api.ok("sendMessage", json!({ "chat_id": chat, "text": "done" }))
        .await;
    assert_eq!(waiter.await.unwrap().unwrap().chat_id, chat);

    let err = api
        .fake
        .wait_for(
            "something that never happens",
            Duration::from_millis(50),
            |_| None::<()>,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("something that never happens"),
        "{err}"
    );
}

/// teloxide (what the center uses) must accept the fake's JSON and map its errors.
#[tokio::test]
async fn teloxide_understands_the_fake() {
    use teloxide::net::Download as _;
    use teloxide::prelude::*;
    use teloxide::types::{
        InlineKeyboardButton, InlineKeyboardMarkup, InputFile, MessageId, ParseMode, ThreadId,
        UpdateKind,
    };
    use teloxide::{ApiError as TgApiError, RequestError};

    let fake = FakeTelegram::start(TOKEN).await.unwrap();
    let bot = Bot::new(TOKEN).set_api_url(fake.api_url().parse().unwrap());
    let me = bot.get_me().await.unwrap();
    assert_eq!(me.id.0, 123_456);

    let chat = fake.create_forum("Fleet");
    let alice = fake.create_user("Alice");
    let topic = fake.create_topic(&alice, chat, "build").unwrap();
    let thread = ThreadId(MessageId(topic.thread_id.unwrap() as i32));
    let markup = InlineKeyboardMarkup::new([[InlineKeyboardButton::callback("Approve", "ok:1")]]);
    let sent = bot
        .send_message(ChatId(chat), "<b>Run</b> <code>cargo test</code>?")
        .message_thread_id(thread)
        .parse_mode(ParseMode::Html)
        .reply_markup(markup.clone())
        .await
        .unwrap();
    assert_eq!(sent.thread_id, Some(thread));
    assert!(sent.is_topic_message);
    assert_eq!(sent.text(), Some("Run cargo test?"));
    assert_eq!(sent.reply_markup(), Some(&markup));

    let same = bot
        .edit_message_text(ChatId(chat), sent.id, "<b>Run</b> <code>cargo test</code>?")
        .parse_mode(ParseMode::Html)
        .reply_markup(markup)
        .await;
    assert!(
        matches!(same, Err(RequestError::Api(TgApiError::MessageNotModified))),
        "{same:?}"
    );
    let bad = bot
        .send_message(ChatId(chat), "a < b")
        .parse_mode(ParseMode::Html)
        .await;
    assert!(
        matches!(
            bad,
            Err(RequestError::Api(TgApiError::CantParseEntities(_)))
        ),
        "{bad:?}"
    );
    fake.force_retry_after(1, 3);
    let limited = bot.send_message(ChatId(chat), "x").await;
    assert!(
        matches!(limited, Err(RequestError::RetryAfter(s)) if s.seconds() == 3),
        "{limited:?}"
    );

    // Every update shape the harness produces deserialises.
    fake.send_text(&alice, chat, topic.thread_id, "/new hello")
        .unwrap();
    fake.press_button(&alice, chat, sent.id.0.into(), "ok:1")
        .unwrap();
    fake.send_photo(
        &alice,
        chat,
        topic.thread_id,
        sample_png(2, 2, [0, 0, 0]),
        Some("pic"),
    )
    .unwrap();
    let doc = fake
        .send_document(
            &alice,
            chat,
            topic.thread_id,
            "a.txt",
            "text/plain",
            &b"hello"[..],
            None,
        )
        .unwrap();
    fake.send_voice(&alice, chat, topic.thread_id, &b"ogg"[..], 1)
        .unwrap();
    fake.close_topic(&alice, chat, topic.thread_id.unwrap())
        .unwrap();
    let dm = fake.create_private_chat(&alice, true);
    fake.create_topic(&alice, dm, "dm").unwrap();
    let updates = bot.get_updates().await.unwrap();
    assert_eq!(updates.len(), 8);
    for u in &updates {
        assert!(
            !matches!(u.kind, UpdateKind::Error(_)),
            "teloxide failed to parse {u:?}"
        );
    }
    let UpdateKind::Message(created) = &updates[0].kind else {
        panic!("{:?}", updates[0])
    };
    assert_eq!(created.forum_topic_created().unwrap().name, "build");
    let UpdateKind::Message(cmd) = &updates[1].kind else {
        panic!("{:?}", updates[1])
    };
    assert_eq!(
        (cmd.text(), cmd.thread_id),
        (Some("/new hello"), Some(thread))
    );
    let UpdateKind::CallbackQuery(q) = &updates[2].kind else {
        panic!("{:?}", updates[2])
    };
    assert_eq!(q.data.as_deref(), Some("ok:1"));
    let bot_reply = bot
        .answer_callback_query(q.id.clone())
        .text("Approved")
        .await;
    assert!(bot_reply.is_ok(), "{bot_reply:?}");

    // Downloads and multipart uploads through teloxide.
    let file = bot.get_file(doc.file_id.unwrap().into()).await.unwrap();
    let mut body = Vec::new();
    bot.download_file(&file.path, &mut body).await.unwrap();
    assert_eq!(body, b"hello");
    let up = bot
        .send_document(
            ChatId(chat),
            InputFile::memory(&b"report"[..]).file_name("r.txt"),
        )
        .caption("report")
        .await
        .unwrap();
    assert_eq!(up.caption(), Some("report"));
    let stored = fake.bot_message(chat, up.id.0.into()).unwrap();
    assert_eq!(stored.media.unwrap().bytes.as_ref(), b"report");
}

//! Media on both sides, drafts and the call log, driven over real HTTP (reqwest and teloxide).

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use super::*;

use super::tests::{Api, TOKEN};

/// Multipart uploads on top of the JSON calls of [`Api`].
impl Api {
    async fn upload(&self, method: &str, form: Form) -> (u16, Value) {
        let url = format!("{}/{method}", self.fake.bot_url());
        let resp = self.http.post(url).multipart(form).send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    async fn upload_ok(&self, method: &str, form: Form) -> Value {
        let (status, v) = self.upload(method, form).await;
        assert_eq!(status, 200, "{method} failed: {v}");
        v["result"].clone()
    }

    async fn upload_err(&self, method: &str, form: Form) -> String {
        let (status, v) = self.upload(method, form).await;
        assert_ne!(status, 200, "{method} unexpectedly succeeded: {v}");
        v["description"].as_str().unwrap().to_owned()
    }

    /// getFile, then the download URL.
    async fn download(&self, file_id: &str) -> Vec<u8> {
        let file = self.ok("getFile", json!({ "file_id": file_id })).await;
        let url = format!(
            "{}/file/bot{TOKEN}/{}",
            self.fake.api_url(),
            file["file_path"].as_str().unwrap()
        );
        let resp = self.http.get(url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        resp.bytes().await.unwrap().to_vec()
    }

    /// The queued updates' messages, confirming them.
    async fn messages(&self) -> Vec<Value> {
        let ups = self.ok("getUpdates", json!({})).await;
        let ups = ups.as_array().unwrap().clone();
        if let Some(last) = ups.last() {
            let offset = last["update_id"].as_i64().unwrap() + 1;
            self.ok("getUpdates", json!({ "offset": offset })).await;
        }
        ups.iter().map(|u| u["message"].clone()).collect()
    }
}

fn part(bytes: &[u8], name: &str, mime: &str) -> Part {
    Part::bytes(bytes.to_vec())
        .file_name(name.to_owned())
        .mime_str(mime)
        .unwrap()
}

fn file_id(v: &Value) -> String {
    v["file_id"].as_str().unwrap().to_owned()
}

/// Minimal bytes with the magic numbers Telegram clients check.
const TGS: &[u8] = b"\x1f\x8b\x08\x00lottie";
const WEBM: &[u8] = b"\x1a\x45\xdf\xa3webm";

#[tokio::test]
async fn user_photos_come_in_sizes_and_albums_share_a_group() {
    let api = Api::start().await;
    let fake = &api.fake;
    let chat = fake.create_forum("Fleet");
    let alice = fake.create_user("Alice");
    let topic = fake.create_topic(&alice, chat, "pics").unwrap().thread_id;
    api.messages().await;

    let big = sample_png(1000, 750, [1, 2, 3]);
    let sent = fake
        .send_photo(&alice, chat, topic, big.clone(), Some("look"))
        .unwrap();
    let tiny = fake.send_photo(&alice, chat, topic, sample_png(2, 2, [0; 3]), None);
    let tiny = tiny.unwrap();
    let msgs = api.messages().await;
    let sizes: Vec<(u64, u64)> = msgs[0]["photo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["width"].as_u64().unwrap(), s["height"].as_u64().unwrap()))
        .collect();
    assert_eq!(sizes, [(90, 68), (320, 240), (800, 600), (1000, 750)]);
    assert_eq!(msgs[0]["caption"], "look");
    let largest = &msgs[0]["photo"][3];
    assert_eq!(sent.file_id.as_deref(), largest["file_id"].as_str());
    assert_eq!(sent.file_ids.len(), 4);
    assert_eq!(largest["file_size"], big.len());
    assert_eq!(api.download(&file_id(largest)).await, big);
    // Smaller sizes are genuine images of their size.
    let small = api.download(&sent.file_ids[0]).await;
    assert_eq!(methods::image_size(&small), Some((90, 68)));
    // A tiny photo still gets a preview size, and the original last.
    assert_eq!(msgs[1]["photo"].as_array().unwrap().len(), 2);
    assert_eq!(msgs[1]["photo"][1]["file_id"], tiny.file_id.unwrap());

    // Albums: one message per item, one media_group_id, the caption on the first.
    let album = fake
        .send_media_group(
            &alice,
            chat,
            topic,
            vec![
                AlbumItem::photo(sample_png(3, 3, [9; 3])),
                AlbumItem::photo(sample_png(4, 4, [8; 3])),
                AlbumItem::Video(VideoFile::new(
                    "v.mp4",
                    "video/mp4",
                    &b"mp4"[..],
                    640,
                    360,
                    3,
                )),
            ],
            Some("trip"),
        )
        .unwrap();
    assert_eq!(album.len(), 3);
    let msgs = api.messages().await;
    assert_eq!(msgs.len(), 3);
    let group = msgs[0]["media_group_id"].as_str().unwrap();
    assert!(msgs.iter().all(|m| m["media_group_id"] == group));
    assert_eq!(album[2].media_group_id.as_deref(), Some(group));
    assert_eq!(msgs[0]["caption"], "trip");
    assert!(msgs[1].get("caption").is_none() && msgs[2].get("caption").is_none());
    assert_eq!(msgs[2]["video"]["width"], 640);
    assert!(
        msgs.iter()
            .all(|m| m["message_thread_id"] == topic.unwrap())
    );
    let ids: Vec<i64> = album.iter().map(|i| i.message_id.unwrap()).collect();
    assert_eq!(ids, [ids[0], ids[0] + 1, ids[0] + 2]);

    let doc = |n: &str| AlbumItem::document(n, "text/plain", &b"x"[..]);
    let docs = fake
        .send_media_group(&alice, chat, topic, vec![doc("a.txt"), doc("b.txt")], None)
        .unwrap();
    assert_ne!(docs[0].media_group_id.as_deref(), Some(group));
    // What a client cannot send is refused, and nothing is posted.
    let before = fake.inspect(|v| v.pending_updates());
    for bad in [
        vec![doc("a.txt")],
        vec![doc("a.txt"), AlbumItem::photo(sample_png(1, 1, [0; 3]))],
        vec![
            AlbumItem::photo(sample_png(1, 1, [0; 3])),
            AlbumItem::photo(&b"junk"[..]),
        ],
    ] {
        assert!(
            fake.send_media_group(&alice, chat, topic, bad, None)
                .is_err()
        );
    }
    assert_eq!(fake.inspect(|v| v.pending_updates()), before);
}

#[tokio::test]
async fn stickers_audio_video_and_animations_are_shaped_and_downloadable() {
    let api = Api::start().await;
    let fake = &api.fake;
    let alice = fake.create_user("Alice");
    let dm = fake.create_private_chat(&alice, false);

    let webp = sample_webp(512, 384, [1, 2, 3, 255]);
    let s = fake
        .send_sticker(
            &alice,
            dm,
            None,
            StickerFile::webp(webp.clone()).set_name("pack"),
        )
        .unwrap();
    let thumb = sample_webp(128, 128, [0, 0, 0, 255]);
    let tgs = StickerFile::tgs(TGS, thumb.clone()).emoji("🔥");
    fake.send_sticker(&alice, dm, None, tgs).unwrap();
    let webm = StickerFile::webm(WEBM, thumb.clone()).size(512, 288);
    fake.send_sticker(&alice, dm, None, webm).unwrap();
    for bad in [
        StickerFile::webp(sample_webp(100, 100, [0; 4])),
        StickerFile::webp(sample_png(512, 512, [0; 3])),
        StickerFile::tgs(&b"{\"v\":1}"[..], thumb.clone()),
        StickerFile::webm(WEBM, sample_webp(512, 512, [0; 4])),
        StickerFile::tgs(TGS, thumb.clone()).size(100, 100),
    ] {
        assert!(fake.send_sticker(&alice, dm, None, bad).is_err());
    }

    let cover = sample_png(320, 320, [5; 3]);
    let audio = AudioFile::new("song.mp3", "audio/mpeg", &b"ID3 mp3"[..], 215)
        .performer("Band")
        .title("Song")
        .thumbnail(cover.clone());
    fake.send_audio(&alice, dm, None, audio, Some("listen"))
        .unwrap();
    assert!(
        fake.send_audio(
            &alice,
            dm,
            None,
            AudioFile::new("x.mp4", "video/mp4", &b"x"[..], 1),
            None
        )
        .is_err()
    );
    let video = VideoFile::new("clip.mp4", "video/mp4", &b"mp4 clip"[..], 1280, 720, 12)
        .thumbnail(sample_png(320, 180, [7; 3]));
    fake.send_video(&alice, dm, None, video, None).unwrap();
    let gif = VideoFile::new("cat.gif.mp4", "video/mp4", &b"mp4 cat"[..], 240, 240, 2);
    let anim = fake
        .send_animation(&alice, dm, None, gif, Some("cat"))
        .unwrap();
    let note = fake
        .send_video_note(
            &alice,
            dm,
            None,
            &b"round"[..],
            384,
            9,
            Some(cover.clone().into()),
        )
        .unwrap();
    assert!(
        fake.send_video_note(&alice, dm, None, &b"round"[..], 700, 9, None)
            .is_err()
    );

    let msgs = api.messages().await;
    assert_eq!(msgs.len(), 7);
    let st = &msgs[0]["sticker"];
    assert_eq!(
        (
            &st["type"],
            &st["is_animated"],
            &st["is_video"],
            &st["width"],
            &st["height"]
        ),
        (
            &json!("regular"),
            &json!(false),
            &json!(false),
            &json!(512),
            &json!(384)
        )
    );
    assert_eq!(
        (&st["emoji"], &st["set_name"]),
        (&json!("🙂"), &json!("pack"))
    );
    assert_eq!(st["file_size"], webp.len());
    assert_eq!(s.file_id.as_deref(), st["file_id"].as_str());
    assert_eq!(api.download(&file_id(st)).await, webp);
    let preview = api.download(&file_id(&st["thumbnail"])).await;
    assert_eq!(webp::webp_size(&preview), Some((128, 96)));
    assert_eq!(s.file_ids.len(), 2);

    let tgs = &msgs[1]["sticker"];
    assert_eq!(
        (&tgs["is_animated"], &tgs["emoji"]),
        (&json!(true), &json!("🔥"))
    );
    assert_eq!(api.download(&file_id(&tgs["thumbnail"])).await, thumb);
    assert_eq!(api.download(&file_id(tgs)).await, TGS);
    let webm = &msgs[2]["sticker"];
    assert_eq!(
        (&webm["is_video"], &webm["height"]),
        (&json!(true), &json!(288))
    );

    let audio = &msgs[3]["audio"];
    assert_eq!(
        (&audio["performer"], &audio["title"], &audio["duration"]),
        (&json!("Band"), &json!("Song"), &json!(215))
    );
    assert_eq!(
        (&audio["file_name"], &audio["mime_type"]),
        (&json!("song.mp3"), &json!("audio/mpeg"))
    );
    assert_eq!(audio["thumbnail"]["width"], 320);
    assert_eq!(msgs[3]["caption"], "listen");
    let video = &msgs[4]["video"];
    assert_eq!(
        (&video["width"], &video["height"], &video["duration"]),
        (&json!(1280), &json!(720), &json!(12))
    );
    assert_eq!(api.download(&file_id(video)).await, b"mp4 clip");
    // An animation is also a document, for the same file.
    let (a, d) = (&msgs[5]["animation"], &msgs[5]["document"]);
    assert_eq!(a["file_id"], d["file_id"]);
    assert_eq!(anim.file_ids, [file_id(a)]);
    assert_eq!(
        (&a["width"], &d["file_name"]),
        (&json!(240), &json!("cat.gif.mp4"))
    );
    let vn = &msgs[6]["video_note"];
    assert_eq!((&vn["length"], &vn["duration"]), (&json!(384), &json!(9)));
    assert_eq!(note.file_ids.len(), 2);
    assert_eq!(api.download(&note.file_ids[1]).await, cover);
}

#[tokio::test]
async fn documents_can_be_too_big_to_download() {
    let api = Api::start().await;
    let fake = &api.fake;
    let alice = fake.create_user("Alice");
    let dm = fake.create_private_chat(&alice, false);
    let big = fake
        .send_document_sized(
            &alice,
            dm,
            None,
            "dump.bin",
            "application/octet-stream",
            25 << 20,
        )
        .unwrap();
    let edge = fake
        .send_document_sized(
            &alice,
            dm,
            None,
            "edge.bin",
            "application/octet-stream",
            20 << 20,
        )
        .unwrap();
    let msgs = api.messages().await;
    assert_eq!(msgs[0]["document"]["file_size"], 25 << 20);
    assert_eq!(
        api.err("getFile", json!({ "file_id": big.file_id.unwrap() }))
            .await,
        "Bad Request: file is too big"
    );
    let bytes = api.download(edge.file_id.as_deref().unwrap()).await;
    assert_eq!(bytes.len(), 20 << 20);
    assert!(bytes.iter().all(|&b| b == 0));
    assert!(
        fake.send_document_sized(&alice, dm, None, "e", "text/plain", 0)
            .is_err()
    );
}

#[tokio::test]
async fn bot_sends_videos_audio_and_animations() {
    let api = Api::start().await;
    let fake = &api.fake;
    let chat = fake.create_forum("Fleet");
    let thumb = sample_png(320, 180, [1; 3]);

    let form = Form::new()
        .text("chat_id", chat.to_string())
        .text("video", "attach://v")
        .text("thumbnail", "attach://t")
        .text("width", "1920")
        .text("height", "1080")
        .text("duration", "99999999")
        .text("caption", "<b>build</b> log")
        .text("parse_mode", "HTML")
        .part("v", part(b"mp4 video", "run.mp4", "video/mp4"))
        .part("t", part(&thumb, "t.png", "image/png"));
    let m = api.upload_ok("sendVideo", form).await;
    let v = &m["video"];
    assert_eq!(
        (&v["width"], &v["height"], &v["duration"]),
        (&json!(1920), &json!(1080), &json!(86_400)),
        "durations are clamped to a day"
    );
    assert_eq!(
        (&v["file_name"], &v["mime_type"]),
        (&json!("run.mp4"), &json!("video/mp4"))
    );
    assert_eq!(m["caption"], "build log");
    assert_eq!(m["caption_entities"][0]["type"], "bold");
    assert_eq!(api.download(&file_id(&v["thumbnail"])).await, thumb);
    assert_eq!(api.download(&file_id(v)).await, b"mp4 video");

    // A thumbnail Telegram would not keep (too big) is dropped silently.
    let form = Form::new()
        .text("chat_id", chat.to_string())
        .text("performer", "Band")
        .part("audio", part(b"mp3", "a.mp3", "audio/mpeg"))
        .part(
            "thumbnail",
            part(&sample_png(640, 640, [0; 3]), "t.png", "image/png"),
        );
    let m = api.upload_ok("sendAudio", form).await;
    assert_eq!(m["audio"]["performer"], "Band");
    assert!(m["audio"].get("title").is_none() && m["audio"].get("thumbnail").is_none());
    assert_eq!(m["audio"]["duration"], 0);

    let form = Form::new()
        .text("chat_id", chat.to_string())
        .part("animation", part(b"gif", "spin.gif", "image/gif"));
    let m = api.upload_ok("sendAnimation", form).await;
    assert_eq!(m["animation"]["file_id"], m["document"]["file_id"]);
    let anim_id = file_id(&m["animation"]);
    // Re-sent by file_id, the file keeps its name.
    let m = api
        .ok(
            "sendAnimation",
            json!({ "chat_id": chat, "animation": anim_id }),
        )
        .await;
    assert_eq!(m["animation"]["file_name"], "spin.gif");
    assert_eq!(m["animation"]["file_id"], anim_id);

    assert_eq!(
        api.err("sendVideo", json!({ "chat_id": chat })).await,
        "Bad Request: there is no video in the request"
    );
    assert_eq!(
        api.err(
            "sendAudio",
            json!({ "chat_id": chat, "audio": "nope", "caption": "x".repeat(1025) })
        )
        .await,
        "Bad Request: message caption is too long"
    );
    assert_eq!(
        api.err(
            "sendAnimation",
            json!({ "chat_id": chat, "animation": anim_id, "caption": "<i>x", "parse_mode": "HTML" })
        )
        .await,
        "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"i\""
    );
    assert_eq!(
        api.err("sendVideo", json!({ "chat_id": chat, "video": "nope" }))
            .await,
        "Bad Request: wrong file identifier/HTTP URL specified"
    );
    assert!(
        api.err(
            "sendAudio",
            json!({ "chat_id": chat, "audio": anim_id, "titel": "x" })
        )
        .await
        .contains("fake_telegram: sendAudio has no parameter \"titel\"")
    );
    let form = Form::new()
        .text("chat_id", chat.to_string())
        .part("video", part(b"", "empty.mp4", "video/mp4"));
    assert_eq!(
        api.upload_err("sendVideo", form).await,
        "Bad Request: file must be non-empty"
    );

    // Bot photos get Telegram's sizes too; the accessors expose every kind.
    let form = Form::new().text("chat_id", chat.to_string()).part(
        "photo",
        part(&sample_png(400, 100, [3; 3]), "p.png", "image/png"),
    );
    let m = api.upload_ok("sendPhoto", form).await;
    let widths: Vec<u64> = m["photo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["width"].as_u64().unwrap())
        .collect();
    assert_eq!(widths, [90, 320, 400]);
    let media = fake.bot_media_messages();
    let kinds: Vec<_> = media.iter().map(|m| m.media_kind().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            MediaKind::Video,
            MediaKind::Audio,
            MediaKind::Animation,
            MediaKind::Animation,
            MediaKind::Photo
        ]
    );
    assert_eq!(media[0].caption(), Some("build log"));
    assert_eq!(media[0].current.source, "<b>build</b> log");
    assert_eq!(media[1].caption(), Some(""));
    let video = media[0].media.as_ref().unwrap();
    assert_eq!(
        (
            video.file_name.as_deref(),
            video.bytes.as_ref(),
            video.width
        ),
        (Some("run.mp4"), &b"mp4 video"[..], Some(1920))
    );
    assert_eq!(media[4].media.as_ref().unwrap().sizes.len(), 2);
    assert_eq!(fake.file_bytes(&anim_id).unwrap().as_ref(), b"gif");
}

#[tokio::test]
async fn edit_message_media_replaces_files_and_keeps_history() {
    let api = Api::start().await;
    let fake = &api.fake;
    let chat = fake.create_forum("Fleet");
    let alice = fake.create_user("Alice");
    let kb = json!({ "inline_keyboard": [[{ "text": "Open", "callback_data": "open" }]] });

    let form = Form::new()
        .text("chat_id", chat.to_string())
        .text("caption", "v1")
        .text("reply_markup", kb.to_string())
        .part("document", part(b"first", "r.txt", "text/plain"));
    let m = api.upload_ok("sendDocument", form).await;
    let id = m["message_id"].as_i64().unwrap();
    let doc_id = file_id(&m["document"]);

    let edit = |media: Value, file: Option<(&str, &[u8], &str)>, markup: bool| {
        let mut form = Form::new()
            .text("chat_id", chat.to_string())
            .text("message_id", id.to_string())
            .text("media", media.to_string());
        if markup {
            form = form.text("reply_markup", kb.to_string());
        }
        if let Some((part_name, bytes, name)) = file {
            form = form.part(
                part_name.to_owned(),
                part(bytes, name, "application/octet-stream"),
            );
        }
        form
    };
    // The same file and caption (and keyboard) is no change.
    let same = json!({ "type": "document", "media": "attach://f", "caption": "v1" });
    assert_eq!(
        api.upload_err(
            "editMessageMedia",
            edit(same.clone(), Some(("f", b"first", "r.txt")), true)
        )
        .await,
        "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message"
    );
    let by_id = json!({ "type": "document", "media": doc_id, "caption": "v1" });
    assert!(
        api.upload_err("editMessageMedia", edit(by_id, None, true))
            .await
            .contains("message is not modified")
    );

    let png = sample_png(10, 10, [4; 3]);
    let photo = json!({ "type": "photo", "media": "attach://p", "caption": "<b>v2</b>", "parse_mode": "HTML" });
    let m = api
        .upload_ok(
            "editMessageMedia",
            edit(photo, Some(("p", &png, "p.png")), false),
        )
        .await;
    assert!(m.get("document").is_none());
    assert_eq!(m["photo"].as_array().unwrap().len(), 2);
    assert_eq!(m["caption"], "v2");
    assert!(
        m.get("reply_markup").is_none(),
        "omitting reply_markup removes the keyboard"
    );
    assert!(m["edit_date"].is_i64());
    let stored = fake.bot_message(chat, id).unwrap();
    assert_eq!(stored.history.len(), 1);
    let history = stored.media_history();
    assert_eq!(history[0].unwrap().kind, MediaKind::Document);
    assert_eq!(history[0].unwrap().bytes.as_ref(), b"first");
    assert_eq!(history[1].unwrap().bytes, png);
    assert_eq!(stored.history[0].text, "v1");
    assert_eq!(stored.caption(), Some("v2"));
    assert_eq!(api.download(&stored.media.unwrap().file_id).await, png);

    let err = |media: Value| api.upload_err("editMessageMedia", edit(media, None, false));
    assert_eq!(
        err(json!({ "type": "photo" })).await,
        "Bad Request: can't parse InputMedia: media not found"
    );
    assert_eq!(
        err(json!({ "type": "photo", "media": "attach://missing" })).await,
        "Bad Request: can't parse InputMedia: media not found"
    );
    assert_eq!(
        err(json!({ "type": "sticker", "media": doc_id })).await,
        "Bad Request: can't parse InputMedia: type \"sticker\" is unsupported"
    );
    assert_eq!(
        err(json!({ "media": doc_id })).await,
        "Bad Request: can't parse InputMedia: Can't find field \"type\""
    );
    assert_eq!(
        err(json!({ "type": "document", "media": doc_id, "caption": "<b>", "parse_mode": "HTML" }))
            .await,
        "Bad Request: can't parse InputMedia: Can't parse entities: Can't find end tag corresponding to start tag \"b\""
    );
    assert_eq!(
        err(json!({ "type": "document", "media": doc_id, "caption": true })).await,
        "Bad Request: can't parse InputMedia: Field \"caption\" must be of type String"
    );
    assert!(
        err(json!({ "type": "photo", "media": doc_id, "performer": "x" }))
            .await
            .contains("fake_telegram: InputMediaPhoto has no field \"performer\"")
    );
    assert_eq!(
        api.err(
            "editMessageMedia",
            json!({ "chat_id": chat, "message_id": id })
        )
        .await,
        "Bad Request: parameter \"media\" is required"
    );
    assert_eq!(
        api.err(
            "editMessageMedia",
            json!({ "chat_id": chat, "message_id": id, "media": "{not json" })
        )
        .await,
        "Bad Request: can't parse input media JSON object"
    );
    assert_eq!(
        api.err(
            "editMessageMedia",
            json!({ "chat_id": chat, "message_id": 999, "media": { "type": "document", "media": doc_id } })
        )
        .await,
        "Bad Request: message to edit not found"
    );
    let long = json!({ "type": "document", "media": doc_id, "caption": "x".repeat(1025) });
    assert_eq!(err(long).await, "Bad Request: message caption is too long");

    // Media can be added to a text message (Bot API 9.x), but users' messages are not the bot's.
    let text = api
        .ok("sendMessage", json!({ "chat_id": chat, "text": "plain" }))
        .await;
    let m = api
        .ok(
            "editMessageMedia",
            json!({ "chat_id": chat, "message_id": text["message_id"], "media": { "type": "document", "media": doc_id } }),
        )
        .await;
    assert_eq!(m["document"]["file_name"], "r.txt");
    assert!(m.get("text").is_none() && m.get("caption").is_none());
    let mine = fake.send_text(&alice, chat, None, "hi").unwrap();
    assert_eq!(
        api.err(
            "editMessageMedia",
            json!({ "chat_id": chat, "message_id": mine.message_id, "media": { "type": "document", "media": doc_id } })
        )
        .await,
        "Bad Request: message can't be edited"
    );

    // Edits of media count against flood control.
    fake.force_retry_after_on("editMessageMedia", 1, 4);
    let (status, v) = api
        .call(
            "editMessageMedia",
            json!({ "chat_id": chat, "message_id": id, "media": { "type": "document", "media": doc_id } }),
        )
        .await;
    assert_eq!((status, &v["parameters"]["retry_after"]), (429, &json!(4)));
}

#[tokio::test]
async fn message_drafts_stream_into_private_chats_only() {
    let api = Api::start().await;
    let fake = &api.fake;
    let alice = fake.create_user("Alice");
    let dm = fake.create_private_chat(&alice, true);
    let topic = fake
        .create_topic(&alice, dm, "t")
        .unwrap()
        .thread_id
        .unwrap();
    let forum = fake.create_forum("Fleet");
    let draft = |chat: i64, id: i64, text: &str| json!({ "chat_id": chat, "draft_id": id, "text": text, "parse_mode": "HTML" });

    assert_eq!(
        api.ok("sendMessageDraft", draft(dm, 7, "<b>Wor</b>")).await,
        true
    );
    let mut d = draft(dm, 7, "<b>Working</b>…");
    d["message_thread_id"] = json!(topic);
    api.ok("sendMessageDraft", d).await;
    // An empty text shows "Thinking...".
    api.ok("sendMessageDraft", draft(dm, 8, "")).await;
    let drafts = fake.drafts();
    assert_eq!(drafts.len(), 3);
    assert_eq!(
        (
            drafts[0].text.as_str(),
            drafts[0].draft_id,
            drafts[0].thread_id
        ),
        ("Wor", 7, None)
    );
    assert_eq!(drafts[0].entities[0].kind, "bold");
    assert_eq!(drafts[1].source, "<b>Working</b>…");
    assert_eq!(fake.drafts_in(dm, Some(topic)).len(), 1);
    assert_eq!(drafts[2].text, "");
    assert!(fake.bot_messages().is_empty(), "drafts are not messages");

    assert_eq!(
        api.err("sendMessageDraft", draft(forum, 7, "x")).await,
        "Bad Request: TEXTDRAFT_PEER_INVALID"
    );
    assert_eq!(
        api.err("sendMessageDraft", draft(dm, 0, "x")).await,
        "Bad Request: fake_telegram: draft_id must be non-zero"
    );
    assert_eq!(
        api.err("sendMessageDraft", draft(dm, 1, &"a".repeat(4097)))
            .await,
        "Bad Request: MESSAGE_TOO_LONG"
    );
    assert_eq!(
        api.err("sendMessageDraft", draft(dm, 1, "<b>x")).await,
        "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\""
    );
    assert_eq!(
        api.err("sendMessageDraft", draft(42, 1, "x")).await,
        "Bad Request: chat not found"
    );
    let mut d = draft(dm, 1, "x");
    d["message_thread_id"] = json!(999);
    assert_eq!(
        api.err("sendMessageDraft", d).await,
        "Bad Request: message thread not found"
    );
    fake.force_retry_after(1, 2);
    let (status, _) = api.call("sendMessageDraft", draft(dm, 1, "x")).await;
    assert_eq!(status, 429);
    assert_eq!(fake.drafts().len(), 3);
}

#[tokio::test]
async fn the_call_log_records_every_call_and_outcome() {
    let api = Api::start().await;
    let fake = &api.fake;
    let chat = fake.create_forum("Fleet");

    let m = api
        .ok(
            "sendMessage",
            json!({ "chat_id": chat.to_string(), "text": "a" }),
        )
        .await;
    let id = m["message_id"].as_i64().unwrap();
    api.err(
        "editMessageText",
        json!({ "chat_id": chat, "message_id": 999, "text": "b" }),
    )
    .await;
    fake.force_retry_after(1, 9);
    api.err("sendMessage", json!({ "chat_id": chat, "text": "c" }))
        .await;
    api.err("sendCarrierPigeon", json!({})).await;
    let url = format!("{}/bot1:wrong/sendMessage", fake.api_url());
    let resp = api
        .http
        .post(url)
        .json(&json!({ "chat_id": chat, "text": "d" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    let calls = fake.calls();
    assert_eq!(calls.len(), 5);
    let sent = &calls[0];
    assert_eq!(
        (
            sent.method.as_str(),
            sent.chat_id,
            sent.message_id,
            sent.is_ok()
        ),
        ("sendMessage", Some(chat), Some(id), true)
    );
    let edit = &calls[1];
    assert_eq!((edit.message_id, edit.error_code()), (Some(999), Some(400)));
    assert_eq!(
        edit.description(),
        Some("Bad Request: message to edit not found")
    );
    let limited = &calls[2];
    assert_eq!(
        (
            limited.retry_after(),
            limited.error_code(),
            limited.message_id
        ),
        (Some(9), Some(429), None)
    );
    assert_eq!(
        (calls[3].method.as_str(), calls[3].error_code()),
        ("sendCarrierPigeon", Some(404))
    );
    assert_eq!(
        (calls[4].chat_id, calls[4].error_code()),
        (Some(chat), Some(401))
    );
    assert!(calls.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
}

/// teloxide must accept every new shape the fake produces, and drive the new methods.
#[tokio::test]
async fn teloxide_understands_media_shapes() {
    use teloxide::prelude::*;
    use teloxide::types::{InputFile, InputMedia, InputMediaPhoto, MediaKind as TgMedia};
    use teloxide::types::{MessageKind, UpdateKind};

    let fake = FakeTelegram::start(TOKEN).await.unwrap();
    let bot = Bot::new(TOKEN).set_api_url(fake.api_url().parse().unwrap());
    let alice = fake.create_user("Alice");
    let dm = fake.create_private_chat(&alice, false);
    let thumb = sample_webp(128, 128, [0, 0, 0, 255]);

    fake.send_photo(&alice, dm, None, sample_png(500, 400, [1; 3]), None)
        .unwrap();
    fake.send_sticker(
        &alice,
        dm,
        None,
        StickerFile::webp(sample_webp(512, 512, [0; 4])),
    )
    .unwrap();
    fake.send_sticker(&alice, dm, None, StickerFile::tgs(TGS, thumb.clone()))
        .unwrap();
    fake.send_sticker(&alice, dm, None, StickerFile::webm(WEBM, thumb))
        .unwrap();
    let audio = AudioFile::new("a.mp3", "audio/mpeg", &b"mp3"[..], 3).title("T");
    fake.send_audio(&alice, dm, None, audio, Some("c")).unwrap();
    let video = VideoFile::new("v.mp4", "video/mp4", &b"mp4"[..], 2, 2, 1);
    fake.send_video(&alice, dm, None, video.clone(), None)
        .unwrap();
    fake.send_animation(&alice, dm, None, video.clone(), None)
        .unwrap();
    fake.send_video_note(&alice, dm, None, &b"vn"[..], 240, 2, None)
        .unwrap();
    fake.send_document_sized(
        &alice,
        dm,
        None,
        "big.iso",
        "application/octet-stream",
        30 << 20,
    )
    .unwrap();
    let items = vec![
        AlbumItem::photo(sample_png(2, 2, [0; 3])),
        AlbumItem::Video(video),
    ];
    fake.send_media_group(&alice, dm, None, items, Some("album"))
        .unwrap();

    let updates = bot.get_updates().await.unwrap();
    assert_eq!(updates.len(), 11);
    let media: Vec<TgMedia> = updates
        .iter()
        .map(|u| match &u.kind {
            UpdateKind::Message(Message {
                kind: MessageKind::Common(c),
                ..
            }) => c.media_kind.clone(),
            other => panic!("teloxide failed to parse {other:?}"),
        })
        .collect();
    assert!(
        matches!(&media[0], TgMedia::Photo(p) if p.photo.len() == 3 && p.photo[2].width == 500)
    );
    assert!(
        matches!(&media[1], TgMedia::Sticker(s) if s.sticker.is_static() && s.sticker.thumbnail.is_some())
    );
    assert!(matches!(&media[2], TgMedia::Sticker(s) if s.sticker.is_animated()));
    assert!(matches!(&media[3], TgMedia::Sticker(s) if s.sticker.is_video()));
    assert!(matches!(&media[4], TgMedia::Audio(a) if a.audio.title.as_deref() == Some("T")));
    assert!(matches!(&media[5], TgMedia::Video(v) if v.video.width == 2));
    assert!(matches!(&media[6], TgMedia::Animation(_)), "{:?}", media[6]);
    assert!(matches!(&media[7], TgMedia::VideoNote(v) if v.video_note.length == 240));
    assert!(matches!(&media[8], TgMedia::Document(d) if d.document.file.size == 30 << 20));
    let group = |m: &TgMedia| match m {
        TgMedia::Photo(p) => p.media_group_id.clone(),
        TgMedia::Video(v) => v.media_group_id.clone(),
        _ => None,
    };
    assert!(group(&media[9]).is_some());
    assert_eq!(group(&media[9]), group(&media[10]));

    // The bot's side: uploads of every kind, and an edit of the media.
    let chat = ChatId(dm);
    let v = bot
        .send_video(chat, InputFile::memory(&b"mp4"[..]).file_name("x.mp4"))
        .caption("clip")
        .await
        .unwrap();
    let video = v.video().unwrap();
    assert_eq!(video.file_name.as_deref(), Some("x.mp4"));
    assert_eq!(video.mime_type.as_ref().unwrap().as_ref(), "video/mp4");
    let a = bot
        .send_audio(chat, InputFile::memory(&b"mp3"[..]).file_name("x.mp3"))
        .performer("P")
        .await
        .unwrap();
    assert_eq!(a.audio().unwrap().performer.as_deref(), Some("P"));
    let g = bot
        .send_animation(chat, InputFile::memory(&b"gif"[..]).file_name("x.gif"))
        .await
        .unwrap();
    assert!(g.animation().is_some());
    let png = sample_png(6, 6, [2; 3]);
    let edited = bot
        .edit_message_media(
            chat,
            v.id,
            InputMedia::Photo(
                InputMediaPhoto::new(InputFile::memory(png.clone()).file_name("p.png"))
                    .caption("now a photo"),
            ),
        )
        .await
        .unwrap();
    assert_eq!(edited.caption(), Some("now a photo"));
    assert_eq!(edited.photo().unwrap().len(), 2);
    let stored = fake.bot_message(dm, v.id.0.into()).unwrap();
    assert_eq!(stored.media.unwrap().bytes, png);
    assert_eq!(
        stored.history[0].media.as_ref().unwrap().kind,
        MediaKind::Video
    );
}

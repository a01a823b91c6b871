//! The rich Telegram surface end to end (real center, real tmux, real Codex, strict fake
//! Telegram): attachments become files on the node whose paths Codex receives, voice goes
//! through a fake transcription service, screenshots are PNGs, images Codex views come back as
//! photos, inputs wait while Codex asks a question, and the operator CLI and the delivery audit
//! work against the running center.

use std::{path::Path, time::Duration};

use e2e::{fake_stt::FakeStt, fake_telegram::sample_png};

use crate::center::CenterEnv;

const WAIT: Duration = Duration::from_secs(60);

/// The paths an answer lists after "Attached file(s) (saved on this machine):".
fn attached_paths(answer: &str) -> Vec<String> {
    answer
        .lines()
        .filter_map(|l| l.strip_prefix("• ").or_else(|| l.strip_prefix("- ")))
        .filter_map(|l| l.split(" (").next())
        .map(str::to_owned)
        .collect()
}

fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

fn run_cli(env: &CenterEnv, args: &[&str]) -> std::process::Output {
    std::process::Command::new(e2e::node_proc::workspace_bin("center").unwrap())
        .args(args)
        .env("CODEX_FLEET_STATE_DIR", &env.opts.state_dir)
        .env_remove("TELEGRAM_BOT_TOKEN")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_and_documents_become_local_paths_for_codex() {
    let env = CenterEnv::start_with(
        "c-media",
        vec![("CODEX_FLEET_MAX_ATTACHMENT_MB".into(), "1".into())],
    )
    .await;
    // A private chat with topics: no group budget of 20 a minute to wait for.
    let chat = env.tg.create_private_chat(&env.alice, true);
    let thread = env.bound_topic_in(chat, "media", "echo: ready").await;
    env.message_in(chat, thread, "first answer", |m| m.text() == "ready")
        .await;

    // A photo with a caption: the caption is the message, the path follows.
    let png = sample_png(40, 30, [200, 10, 10]);
    env.tg
        .send_photo(
            &env.alice,
            chat,
            Some(thread),
            png.clone(),
            Some("echo: photo"),
        )
        .unwrap();
    let answer = env
        .message_in(chat, thread, "photo answer", |m| {
            m.text().starts_with("photo")
        })
        .await;
    let paths = attached_paths(answer.text());
    assert_eq!(paths.len(), 1, "{}", answer.text());
    assert!(answer.text().contains("(photo, "), "{}", answer.text());
    assert_eq!(std::fs::read(&paths[0]).unwrap(), png);
    assert!(
        paths[0].starts_with(&env.opts.state_dir.display().to_string()),
        "{} is not under the node's state dir",
        paths[0]
    );

    // A document of any type keeps a sanitised version of its name.
    let tarball: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    env.tg
        .send_document(
            &env.alice,
            chat,
            Some(thread),
            "my project $(rm -rf ~).tar.gz",
            "application/gzip",
            tarball.clone(),
            Some("echo: archive"),
        )
        .unwrap();
    let answer = env
        .message_in(chat, thread, "document answer", |m| {
            m.text().starts_with("archive")
        })
        .await;
    let paths = attached_paths(answer.text());
    assert_eq!(paths.len(), 1, "{}", answer.text());
    assert!(
        paths[0].ends_with("/my_project___rm_-rf___.tar.gz"),
        "{}",
        paths[0]
    );
    assert_eq!(std::fs::read(&paths[0]).unwrap(), tarball);

    // A burst of two files becomes one input.
    env.tg
        .send_document(
            &env.alice,
            chat,
            Some(thread),
            "a.txt",
            "text/plain",
            b"first file".to_vec(),
            Some("echo: both"),
        )
        .unwrap();
    env.tg
        .send_document(
            &env.alice,
            chat,
            Some(thread),
            "b.txt",
            "text/plain",
            b"second file".to_vec(),
            None,
        )
        .unwrap();
    let answer = env
        .message_in(chat, thread, "burst answer", |m| {
            m.text().starts_with("both")
        })
        .await;
    let paths = attached_paths(answer.text());
    assert_eq!(paths.len(), 2, "{}", answer.text());
    assert_eq!(std::fs::read(&paths[0]).unwrap(), b"first file");
    assert_eq!(std::fs::read(&paths[1]).unwrap(), b"second file");

    // A file and then a text sent right after it reach Codex in that order.
    env.tg
        .send_document(
            &env.alice,
            chat,
            Some(thread),
            "notes.txt",
            "text/plain",
            b"notes".to_vec(),
            Some("echo: file first"),
        )
        .unwrap();
    env.say_in(chat, thread, "echo: text second");
    let second = env
        .message_in(chat, thread, "the text's answer", |m| {
            m.text() == "text second"
        })
        .await;
    let first = env
        .message_in(chat, thread, "the file's answer", |m| {
            m.text().starts_with("file first")
        })
        .await;
    assert!(
        first.message_id < second.message_id,
        "the text overtook the file"
    );

    // Past the configured cap (1 MB here): a clear refusal, nothing typed, no download.
    let downloads_before = env.tg.calls_to("getFile").len();
    env.tg
        .send_document(
            &env.alice,
            chat,
            Some(thread),
            "big.bin",
            "application/octet-stream",
            vec![7u8; 1_500_000],
            Some("echo: big"),
        )
        .unwrap();
    env.message_in(chat, thread, "too large", |m| {
        m.text()
            .contains("“big.bin” is too large (1.4 MB; the limit is 1.0 MB)")
    })
    .await;
    assert_eq!(env.tg.calls_to("getFile").len(), downloads_before);

    // Media to an unbound topic is ignored without download.
    let unbound = env
        .tg
        .create_topic(&env.alice, chat, "unbound")
        .unwrap()
        .thread_id
        .unwrap();
    env.tg
        .send_photo(&env.alice, chat, Some(unbound), png.clone(), None)
        .unwrap();
    // A text after it proves the photo was handled (the topic's updates run in order).
    env.say_in(chat, unbound, "hello");
    env.message_in(chat, unbound, "folder browser", |m| {
        m.text().contains("Choose a folder")
    })
    .await;
    assert_eq!(env.tg.calls_to("getFile").len(), downloads_before);

    // /history pages through the conversation with times, editing its one message in place.
    env.say_in(chat, thread, "/history");
    let page = env
        .message_in(chat, thread, "history", |m| {
            m.text().starts_with("History (1–5 of")
        })
        .await;
    assert!(page.text().contains(" UTC"), "{}", page.text());
    assert!(page.text().contains("text second"), "{}", page.text());
    env.press_in(chat, &page, "Older ▶");
    let older = env
        .message_in(chat, thread, "older page", |m| {
            m.message_id == page.message_id && m.text().starts_with("History (6–")
        })
        .await;
    assert!(older.text().contains("echo: both"), "{}", older.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stickers_audio_video_animations_and_albums_reach_codex() {
    let env = CenterEnv::start("c-kinds").await;
    // A private chat with topics: no group budget of 20 a minute to wait for.
    let chat = env.tg.create_private_chat(&env.alice, true);
    let thread = env.bound_topic_in(chat, "kinds", "echo: ready").await;
    // Waits for the `n`th answer that lists attached files; returns its text and paths.
    let nth_answer = async |n: usize, what: &str| {
        let found = env
            .tg
            .wait_for(what, Duration::from_secs(60), |v| {
                let answers: Vec<String> = v
                    .messages_in(chat, Some(thread))
                    .into_iter()
                    .filter(|m| m.text().contains("saved on this machine"))
                    .map(|m| m.text().to_owned())
                    .collect();
                (answers.len() >= n).then_some(answers)
            })
            .await
            .unwrap();
        assert_eq!(found.len(), n, "one answer per input: {found:#?}");
        let text = found[n - 1].clone();
        let paths = attached_paths(&text);
        (text, paths)
    };

    // A static sticker becomes a PNG.
    let webp = e2e::fake_telegram::sample_webp(512, 512, [255, 0, 0, 255]);
    env.tg
        .send_sticker(
            &env.alice,
            chat,
            Some(thread),
            e2e::fake_telegram::StickerFile::webp(webp),
        )
        .unwrap();
    let (text, paths) = nth_answer(1, "static sticker").await;
    assert!(text.contains("(sticker, "), "{text}");
    let (w, h, _) = decode_png(&std::fs::read(&paths[0]).unwrap());
    assert_eq!((w, h), (512, 512));

    // An animated sticker passes its thumbnail, as PNG.
    let thumb = e2e::fake_telegram::sample_webp(100, 100, [0, 0, 255, 255]);
    env.tg
        .send_sticker(
            &env.alice,
            chat,
            Some(thread),
            e2e::fake_telegram::StickerFile::tgs(vec![0x1f, 0x8b, 8, 0, 1, 2, 3], thumb),
        )
        .unwrap();
    let (text, paths) = nth_answer(2, "animated sticker").await;
    assert!(text.contains("(sticker preview, "), "{text}");
    let (w, h, _) = decode_png(&std::fs::read(&paths[0]).unwrap());
    assert_eq!((w, h), (100, 100));

    // Audio, video (with or without a preview frame, and saying which) and an animation.
    let audio = b"ID3 fake mp3 bytes".to_vec();
    env.tg
        .send_audio(
            &env.alice,
            chat,
            Some(thread),
            e2e::fake_telegram::AudioFile::new("song.mp3", "audio/mpeg", audio.clone(), 3),
            Some("echo: song"),
        )
        .unwrap();
    let (text, paths) = nth_answer(3, "audio").await;
    assert!(
        text.starts_with("song") && text.contains("(audio, "),
        "{text}"
    );
    assert!(paths[0].ends_with("/song.mp3"), "{}", paths[0]);
    assert_eq!(std::fs::read(&paths[0]).unwrap(), audio);

    let video = b"\0\0\0\x18ftypmp42 fake video".to_vec();
    env.tg
        .send_video(
            &env.alice,
            chat,
            Some(thread),
            e2e::fake_telegram::VideoFile::new("clip.mp4", "video/mp4", video.clone(), 320, 240, 2),
            Some("echo: clip"),
        )
        .unwrap();
    let (text, paths) = nth_answer(4, "video").await;
    assert!(text.contains("(video, "), "{text}");
    assert!(
        text.contains("preview frame"),
        "the input must say whether there is a frame: {text}"
    );
    assert_eq!(std::fs::read(&paths[0]).unwrap(), video);

    env.tg
        .send_animation(
            &env.alice,
            chat,
            Some(thread),
            e2e::fake_telegram::VideoFile::new(
                "loop.mp4",
                "video/mp4",
                b"gif-ish".to_vec(),
                64,
                64,
                1,
            ),
            Some("echo: loop"),
        )
        .unwrap();
    let (text, _) = nth_answer(5, "animation").await;
    assert!(text.contains("(animation, "), "{text}");

    // An album of two photos and a document-free caption is one input.
    let one = sample_png(30, 30, [1, 2, 3]);
    let two = sample_png(31, 31, [4, 5, 6]);
    env.tg
        .send_media_group(
            &env.alice,
            chat,
            Some(thread),
            vec![
                e2e::fake_telegram::AlbumItem::photo(one.clone()),
                e2e::fake_telegram::AlbumItem::photo(two.clone()),
            ],
            Some("echo: album"),
        )
        .unwrap();
    let (text, paths) = nth_answer(6, "album").await;
    assert!(text.starts_with("album"), "{text}");
    assert_eq!(paths.len(), 2, "{text}");
    assert_eq!(std::fs::read(&paths[0]).unwrap(), one);
    assert_eq!(std::fs::read(&paths[1]).unwrap(), two);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_is_transcribed_shown_and_typed() {
    let stt = FakeStt::start(Some("stt-secret-key")).await.unwrap();
    stt.set_transcript("echo: spoken words");
    let env = CenterEnv::start_with(
        "c-voice",
        vec![
            ("CODEX_FLEET_VOICE_URL".into(), stt.base_url()),
            ("CODEX_FLEET_VOICE_KEY".into(), "stt-secret-key".into()),
        ],
    )
    .await;
    let thread = env.bound_topic("voice", "echo: ready").await;
    env.message(thread, "first answer", |m| m.text() == "ready")
        .await;
    env.tg
        .send_voice(
            &env.alice,
            env.chat,
            Some(thread),
            b"OggS fake voice".to_vec(),
            2,
        )
        .unwrap();
    env.message(thread, "the transcript", |m| {
        m.text() == "🎙 “echo: spoken words”"
    })
    .await;
    env.message(thread, "the answer", |m| m.text() == "spoken words")
        .await;
    let requests = stt.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].model, "whisper-1");
    // The key never shows up in Telegram.
    assert!(
        env.texts_in(thread)
            .iter()
            .all(|t| !t.contains("stt-secret-key")),
        "{:?}",
        env.texts_in(thread)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshots_are_pngs_with_a_refresh_button_and_dead_windows_say_so() {
    let env = CenterEnv::start("c-shot").await;
    let thread = env.bound_topic("shot", "echo: painted").await;
    env.message(thread, "first answer", |m| m.text() == "painted")
        .await;
    env.say(thread, "/screenshot");
    let shot = env
        .message(thread, "the screenshot", |m| m.media.is_some())
        .await;
    let (w, h, pixels) = decode_png(&shot.media.as_ref().unwrap().bytes);
    assert!(w > 300 && h > 200, "{w}x{h}");
    let first = &pixels[..3];
    assert!(
        pixels.chunks(3).filter(|p| *p != first).count() > 1000,
        "the screenshot is blank"
    );
    let caption = shot.caption().unwrap_or("");
    assert!(
        caption.starts_with("Codex: ") && caption.ends_with(" UTC") && !caption.contains("unknown"),
        "{caption:?}"
    );
    // Refresh edits the same message's photo, captioned with what Codex does now: ready for
    // input once its screen shows the turn's end. Right after the answer a loaded machine's
    // Codex may not have redrawn yet (then the caption truly says "working"); each press
    // looks again.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut presses = 0;
    loop {
        env.press(&shot, "🔄 Refresh");
        presses += 1;
        let refreshed = env
            .tg
            .wait_for("the refreshed screenshot", WAIT, |v| {
                let edits = v
                    .calls()
                    .iter()
                    .filter(|c| c.method.eq_ignore_ascii_case("editMessageMedia") && c.is_ok())
                    .count();
                (edits >= presses)
                    .then(|| v.bot_message(shot.chat_id, shot.message_id).cloned())
                    .flatten()
            })
            .await
            .unwrap();
        let media = refreshed.media.as_ref().expect("the refreshed photo");
        let (w, h, _) = decode_png(&media.bytes);
        assert!(w > 300 && h > 200, "{w}x{h}");
        let caption = refreshed.caption().unwrap_or("");
        if caption.contains("Codex: ready for input") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Codex never showed ready for input: {caption:?}"
        );
    }
    // Codex quits: the screenshot says the window is dead.
    env.say(thread, "/quit");
    env.message(thread, "exit notice", |m| m.text().contains("Codex exited"))
        .await;
    env.say(thread, "/screenshot");
    env.message(thread, "dead window", |m| {
        m.text().starts_with("No screenshot:") && m.text().contains("exited")
    })
    .await;
    // The /quit was Codex's to take: the window was not brought back behind the user's back
    // (which typed /quit into the new one too, and raced the screenshot to the window).
    let topic = env.tg.messages_in(env.chat, Some(thread));
    assert!(
        topic
            .iter()
            .all(|m| !m.text().contains("resumed this conversation")),
        "{}",
        env.tg.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_codex_views_arrive_as_photos() {
    let env = CenterEnv::start("c-view").await;
    let image = env.project.join("diagram.png");
    let png = sample_png(120, 80, [10, 120, 240]);
    std::fs::write(&image, &png).unwrap();
    let thread = env
        .bound_topic("view", &format!("view: {}", image.display()))
        .await;
    let photo = env
        .message(thread, "the viewed image", |m| m.media.is_some())
        .await;
    assert_eq!(photo.media.as_ref().unwrap().bytes.as_ref(), png.as_slice());
    assert!(
        photo.caption().unwrap_or("").contains("diagram.png"),
        "{:?}",
        photo.caption()
    );

    // An image the answer names (as after generating one) follows the answer as a photo; a
    // non-image with an image's name does not.
    let chart = sample_png(90, 60, [200, 50, 50]);
    std::fs::write(env.project.join("chart.png"), &chart).unwrap();
    std::fs::write(env.project.join("fake.png"), b"not an image at all").unwrap();
    env.say(thread, "echo: Drew it: `chart.png`, and `fake.png`.");
    env.message(thread, "the answer", |m| m.text().starts_with("Drew it"))
        .await;
    let photo = env
        .message(thread, "the named image", |m| {
            m.media
                .as_ref()
                .is_some_and(|media| media.bytes.as_ref() == chart.as_slice())
        })
        .await;
    assert!(photo.caption().unwrap_or("").contains("chart.png"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let photos = env
        .tg
        .messages_in(env.chat, Some(thread))
        .into_iter()
        .filter(|m| m.media.is_some())
        .count();
    assert_eq!(photos, 2, "the fake image must not be sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_wait_while_codex_asks_and_survive_a_restart() {
    let mut env = CenterEnv::start("c-held").await;
    let thread = env.bound_topic("held", "approve: touch approved.txt").await;
    let prompt = env
        .message(thread, "the approval prompt", |m| {
            m.text().contains("Codex is asking")
        })
        .await;
    env.say(thread, "echo: after the question");
    env.message(thread, "held receipt", |m| m.text().starts_with("⏸ Held"))
        .await;
    env.message(thread, "held list", |m| {
        m.text().contains("1 message(s) wait") && m.text().contains("echo: after the question")
    })
    .await;
    // The center restarts while the input is held: nothing is lost.
    env.restart_center().await;
    env.press(&prompt, "1.");
    env.message(thread, "the held input's answer", |m| {
        m.text() == "after the question"
    })
    .await;
    // The list goes away once everything was typed.
    env.tg
        .wait_for("the held list removed", Duration::from_secs(30), |v| {
            v.calls()
                .iter()
                .any(|c| c.method.eq_ignore_ascii_case("deleteMessage") && c.is_ok())
                .then_some(())
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_held_queue_is_capped_and_its_drop_button_drops_them_all() {
    let env = CenterEnv::start("c-held-cap").await;
    let thread = env.bound_topic("cap", "approve: touch never.txt").await;
    env.message(thread, "the approval prompt", |m| {
        m.text().contains("Codex is asking")
    })
    .await;
    // Five wait (the default cap); the sixth is refused and says why.
    for i in 1..=5 {
        env.say(thread, &format!("echo: held {i}"));
    }
    let list = env
        .message(thread, "five held", |m| {
            m.text().contains("5 message(s) wait")
        })
        .await;
    env.say(thread, "echo: one too many");
    env.message(thread, "the sixth refused", |m| {
        m.text().contains("Not delivered: 5 messages already wait")
    })
    .await;
    // The list's button drops them all: each receipt says so, the list goes away, and
    // nothing was typed (the question is still on screen).
    let list = env.tg.bot_message(list.chat_id, list.message_id).unwrap();
    env.press(&list, "✗ Drop held messages");
    env.tg
        .wait_for("five dropped receipts", WAIT, |v| {
            let dropped = v
                .messages_in(env.chat, Some(thread))
                .iter()
                .filter(|m| m.text() == "✗ Dropped.")
                .count();
            (dropped == 5).then_some(())
        })
        .await
        .unwrap();
    env.tg
        .wait_for("the held list removed", WAIT, |v| {
            v.bot_message(list.chat_id, list.message_id)
                .is_none_or(|m| m.deleted)
                .then_some(())
        })
        .await
        .unwrap();
    let texts = env.texts_in(thread);
    assert!(
        !texts.iter().any(|t| t.starts_with("held ")),
        "a dropped input reached Codex: {texts:?}"
    );
    assert!(!env.project.join("never.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_cli_sends_types_reports_and_the_audit_records_every_call() {
    let env = CenterEnv::start("c-cli").await;
    let thread = env.bound_topic("cli", "echo: bound").await;
    env.message(thread, "first answer", |m| m.text() == "bound")
        .await;

    // center send with a file: a photo in the topic, the target resolved from state.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chart.png");
    let png = sample_png(64, 48, [0, 200, 0]);
    std::fs::write(&file, &png).unwrap();
    // The first upload meets flood control: it is retried after retry_after, and audited.
    env.tg.force_retry_after_on("sendPhoto", 1, 1);
    let out = run_cli(
        &env,
        &["send", "--file", file.to_str().unwrap(), "the **chart**"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let photo = env
        .message(thread, "sent photo", |m| m.media.is_some())
        .await;
    assert_eq!(photo.media.as_ref().unwrap().bytes.as_ref(), png.as_slice());
    assert_eq!(photo.caption(), Some("the **chart**"));
    // Text only, as a document type override, and a bad type.
    let out = run_cli(
        &env,
        &[
            "send",
            "--type",
            "document",
            "--file",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_cli(
        &env,
        &[
            "send",
            "--type",
            "sticker",
            "--file",
            file.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown type"));

    // center input: the same path as Telegram, with the outcome on stdout.
    let out = run_cli(
        &env,
        &[
            "input",
            "--topic",
            &thread.to_string(),
            "echo: from the cli",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Delivered"));
    env.message(thread, "cli answer", |m| m.text() == "from the cli")
        .await;

    // center status, for people and as JSON.
    let out = run_cli(&env, &["status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("local\tonline") && summary.contains("bindings:"),
        "{summary}"
    );
    let out = run_cli(&env, &["status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["bindings"].as_array().unwrap().len(), 1, "{status}");
    assert_eq!(status["bindings"][0]["thread_id"], thread);
    assert_eq!(status["nodes"][0]["name"], "local");
    assert_eq!(status["nodes"][0]["online"], true);

    // Two bound topics and no --topic: refused, nothing sent.
    let second = env.bound_topic("cli-2", "echo: second").await;
    env.message(second, "second answer", |m| m.text() == "second")
        .await;
    // The receipt's edit to "Delivered" can follow the answer (it waits on the node's reply,
    // the answer does not): let it land before counting what the refused commands send.
    env.message(second, "second receipt", |m| {
        m.text().starts_with("✓ Delivered")
    })
    .await;
    let sends_before = env.tg.calls().len();
    let out = run_cli(&env, &["send", "ambiguous"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("2 bound topics match"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_cli(&env, &["input", "--topic", "nope", "echo: x"]);
    assert!(!out.status.success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let new_calls: Vec<String> = env.tg.calls()[sends_before..]
        .iter()
        .filter(|c| !c.method.eq_ignore_ascii_case("getupdates"))
        .map(|c| format!("{} {}", c.method.to_lowercase(), c.params))
        .collect();
    assert!(new_calls.is_empty(), "{new_calls:?}");
    // agent-node send from inside the first topic's window (as Codex would run it): the
    // window's session (in its environment) picks the topic even though two are bound.
    let first_session = status["bindings"][0]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The window's own environment says which session and node it belongs to.
    let panes = env
        .tmux
        .tmux(&[
            "list-panes",
            "-a",
            "-F",
            "#{pane_pid} #{@codex-fleet-session}",
        ])
        .unwrap();
    let pid = panes
        .lines()
        .find_map(|l| l.strip_suffix(&format!(" {first_session}")))
        .unwrap_or_else(|| panic!("no pane of {first_session} in {panes}"))
        .to_owned();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let window_env: Vec<(String, String)> = environ
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .filter(|(k, _)| k == "CODEX_FLEET_SESSION" || k == "AGENT_NODE_STATE_DIR")
        .collect();
    assert_eq!(window_env.len(), 2, "{window_env:?}");
    assert!(!String::from_utf8_lossy(&environ).contains(&env.opts.token));
    let out = std::process::Command::new(e2e::node_proc::workspace_bin("agent-node").unwrap())
        .arg("send")
        .arg("from the window")
        .env_remove("AGENT_NODE_STATE_DIR")
        .env_remove("CODEX_FLEET_SESSION")
        .envs(window_env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.message(thread, "relayed from the window", |m| {
        m.text() == "from the window"
    })
    .await;

    // The audit has one line per Bot API call the center made (polls aside), no token.
    let audit_path = Path::new(&env.opts.state_dir).join("audit.jsonl");
    let text = std::fs::read_to_string(&audit_path).unwrap();
    assert!(
        !text.contains(&env.opts.token),
        "the token leaked into the audit"
    );
    let audit = center::telegram::audit::read_all(&audit_path).unwrap();
    let mut made: Vec<String> = env
        .tg
        .calls()
        .iter()
        .map(|c| c.method.to_lowercase())
        .filter(|m| m != "getupdates")
        .collect();
    let mut recorded: Vec<String> = audit
        .iter()
        .map(|l| l["method"].as_str().unwrap().to_lowercase())
        .filter(|m| m != "downloadfile")
        .collect();
    made.sort();
    recorded.sort();
    assert_eq!(recorded, made);
    assert!(
        audit.iter().any(|l| l["method"] == "sendPhoto"
            && l["outcome"] == "retry_after"
            && l["retry_after_s"].as_f64() == Some(1.0)),
        "no audited 429: {:?}",
        audit
            .iter()
            .filter(|l| l["outcome"] != "ok")
            .collect::<Vec<_>>()
    );
    for line in &audit {
        let method = line["method"].as_str().unwrap();
        if method.starts_with("send") && method != "sendChatAction" {
            assert!(line["payload_sha256"].is_string(), "{line}");
            if line["outcome"] == "ok" {
                assert!(line["message_id"].is_i64(), "{line}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_chat_gets_live_drafts_of_the_running_turn() {
    let env = CenterEnv::start_with(
        "c-draft",
        vec![("CODEX_FLEET_DRAFTS".into(), "true".into())],
    )
    .await;
    let chat = env.tg.create_private_chat(&env.alice, true);
    // The model holds the turn's answer until the draft was seen: the turn runs as long as the
    // draft takes under any load (a `sleep` of a few seconds can end before a starved center
    // shows it, and the answer rightly drops a preview still queued).
    let thread = env
        .bound_topic_in(chat, "drafts", "hold: echo looking around")
        .await;
    let draft = env
        .tg
        .wait_for("a draft of the running turn", WAIT, |v| {
            v.drafts()
                .iter()
                .find(|d| {
                    d.chat_id == chat
                        && d.thread_id == Some(thread)
                        && d.text.contains("looking around")
                })
                .cloned()
        })
        .await
        .unwrap();
    assert_ne!(draft.draft_id, 0);
    assert!(
        env.tg
            .messages_in(chat, Some(thread))
            .iter()
            .all(|m| !m.text().starts_with("ran ")),
        "the draft must show the turn while it runs"
    );
    env.model.release_held();
    env.tg
        .wait_for_message("the turn's answer", WAIT, |m| {
            m.chat_id == chat
                && m.thread_id == Some(thread)
                && m.text() == "ran echo looking around"
        })
        .await
        .unwrap();
    let drafts = env.tg.drafts_in(chat, Some(thread));
    assert!(drafts.iter().all(|d| d.draft_id != 0), "{drafts:#?}");
    // Groups never get drafts (Telegram refuses them there).
    assert!(
        env.tg
            .calls_to("sendMessageDraft")
            .iter()
            .all(|c| c.chat_id == Some(chat)),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_through_a_local_command_gets_the_file_path_as_one_argument() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("fake stt.sh");
    let seen = dir.path().join("seen.txt");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$#\" \"$1\" > '{}'\necho 'echo: said locally'\n",
            seen.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let env = CenterEnv::start_with(
        "c-voice-cmd",
        vec![(
            "CODEX_FLEET_VOICE_COMMAND".into(),
            format!("'{}' {{input}}", script.display()),
        )],
    )
    .await;
    let thread = env.bound_topic("voice-cmd", "echo: ready").await;
    env.message(thread, "first answer", |m| m.text() == "ready")
        .await;
    env.tg
        .send_voice(
            &env.alice,
            env.chat,
            Some(thread),
            b"OggS local".to_vec(),
            1,
        )
        .unwrap();
    env.message(thread, "the answer", |m| m.text() == "said locally")
        .await;
    let seen = std::fs::read_to_string(&seen).unwrap();
    let mut lines = seen.lines();
    assert_eq!(lines.next(), Some("1"), "{seen}");
    assert!(lines.next().unwrap().ends_with(".ogg"), "{seen}");
}

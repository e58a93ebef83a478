//! Favorite tracks: add, remove, list, contains.

use super::*;

// ------------------------------------------------------------------ favorites

#[tokio::test]
async fn favorites_are_added_and_removed_by_query_or_path_writing_one_task_each() {
    let app = app().await;
    let s = app.user("alice").await;
    let ok = json!({"message": "success", "status": 200});
    assert_eq!(app.send(req("POST", "/user/track/favorite?track_id=42").bearer(&s.access)).await.body, ok);
    assert_eq!(app.send(req("POST", "/user/track/favorite/spotify:track:7").bearer(&s.access)).await.body, ok);
    let encoded = app.send(req("POST", "/user/track/favorite/spotify%3Atrack%3A7").bearer(&s.access)).await;
    assert_eq!(encoded.body, ok, "a percent-encoded path id is the same id");
    assert_eq!(app.send(req("DELETE", "/user/track/favorite?track_id=42").bearer(&s.access)).await.body, ok);
    assert_eq!(app.send(req("DELETE", "/user/track/favorite/spotify:track:7").bearer(&s.access)).await.body, ok);
    let kinds: Vec<_> = app.tasks().await.iter().map(|t| (t.kind, t.track_id.clone().unwrap().to_string())).collect();
    assert_eq!(
        kinds,
        [
            (TaskKind::FavoriteAdded, "42".into()),
            (TaskKind::FavoriteAdded, "spotify:track:7".into()),
            (TaskKind::FavoriteRemoved, "42".into()),
            (TaskKind::FavoriteRemoved, "spotify:track:7".into())
        ]
    );
}

#[tokio::test]
async fn favorites_are_idempotent() {
    let app = app().await;
    let s = app.user("alice").await;
    for _ in 0..2 {
        assert_eq!(app.send(req("POST", "/user/track/favorite?track_id=1").bearer(&s.access)).await.status, 200);
    }
    for _ in 0..2 {
        assert_eq!(app.send(req("DELETE", "/user/track/favorite?track_id=1").bearer(&s.access)).await.status, 200);
    }
    assert_eq!(app.tasks().await.len(), 2);
}

#[tokio::test]
async fn favorite_batches_take_up_to_fifty_ids_counting_duplicates_once() {
    let app = app().await;
    let s = app.user("alice").await;
    let fifty = (0..50).map(|n| n.to_string()).collect::<Vec<_>>().join(",");
    let path = format!("/user/track/favorite?track_id={fifty}");
    assert_eq!(app.send(req("POST", &path).bearer(&s.access)).await.status, 200);
    let reply = app.send(req("POST", "/user/track/favorite?track_id=a,b,a").bearer(&s.access)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(app.tasks().await.len(), 52);
    let fifty_one = format!("/user/track/favorite?track_id={fifty},x");
    app.send(req("POST", &fifty_one).bearer(&s.access)).await.error(400);
}

#[tokio::test]
async fn bad_track_ids_are_400_and_write_nothing() {
    let app = app().await;
    let s = app.user("alice").await;
    for path in [
        "/user/track/favorite",
        "/user/track/favorite?track_id=",
        "/user/track/favorite?track_id=a,,b",
        "/user/track/favorite?track_id=a%20b",
        "/user/track/favorite/x?track_id=y",
        "/user/track/favorite/%F0%9F%8E%B5",
    ] {
        for method in ["POST", "DELETE"] {
            let msg = app.send(req(method, path).bearer(&s.access)).await.error(400);
            assert!(msg.starts_with("track_id"), "{method} {path}: {msg}");
        }
    }
    let long = format!("/user/track/favorite?track_id={}", "x".repeat(65));
    app.send(req("POST", &long).bearer(&s.access)).await.error(400);
    assert!(app.tasks().await.is_empty());
}

#[tokio::test]
async fn favorites_need_an_access_token() {
    let app = app().await;
    app.send(req("POST", "/user/track/favorite?track_id=1")).await.error(401);
    app.send(req("DELETE", "/user/track/favorite/1")).await.error(401);
    app.send(req("GET", "/user/track/favorite")).await.error(401);
    app.send(req("GET", "/user/track/favorite/contains?track_id=1")).await.error(401);
}

#[tokio::test]
async fn favorites_are_listed_newest_first_page_by_page() {
    let app = app().await;
    let s = app.user("alice").await;
    for id in ["a", "b", "c"] {
        app.send(req("POST", &format!("/user/track/favorite?track_id={id}")).bearer(&s.access)).await;
    }
    let first = app.send(req("GET", "/user/track/favorite?limit=2").bearer(&s.access)).await;
    assert_eq!(first.body["response"], json!({"message": "success", "status": 200}));
    let ids: Vec<_> =
        first.body["tracks"].as_array().unwrap().iter().map(|t| t["track_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["c", "b"]);
    assert!(first.body["tracks"][0]["added_at"].as_str().unwrap().ends_with('Z'));
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = app.send(req("GET", &format!("/user/track/favorite?limit=2&cursor={cursor}")).bearer(&s.access)).await;
    assert_eq!(second.body["tracks"][0]["track_id"], "a");
    assert_eq!(second.body["next_cursor"], json!(null));
    for bad in ["limit=0", "limit=101", "limit=x", "cursor=zzz"] {
        app.send(req("GET", &format!("/user/track/favorite?{bad}")).bearer(&s.access)).await.error(400);
    }
}

#[tokio::test]
async fn contains_answers_in_request_order() {
    let app = app().await;
    let s = app.user("alice").await;
    app.send(req("POST", "/user/track/favorite?track_id=b,d").bearer(&s.access)).await;
    let reply = app.send(req("GET", "/user/track/favorite/contains?track_id=a,b,c,d").bearer(&s.access)).await;
    assert_eq!(
        reply.body,
        json!({"response": {"message": "success", "status": 200}, "contains": [false, true, false, true]})
    );
    app.send(req("GET", "/user/track/favorite/contains").bearer(&s.access)).await.error(400);
}

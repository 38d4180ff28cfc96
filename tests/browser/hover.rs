//! Hover values and the demo badge: the real pointer moved over a line chart's day, an hourly
//! bar, a channel stack and a retention cell must show that part's values in the page's tooltip;
//! a click on a cohort row highlights it; the demo shows its badge with the simulated date.

use serde_json::{json, Value};

use super::cdp::Browser;

/// The chart parts a person can point at, by section.
const PARTS: [(&str, &str); 4] = [
    ("line", "#activity rect.hit"),
    ("bar", "#hourly rect.hit"),
    ("stack", "#acquisition rect.hit"),
    ("heat", "#retention td[data-tip]"),
];

/// The centre of the last element matching `selector`, scrolled into view. It waits two frames
/// after scrolling (the page hides its tooltip on the scroll event, which comes with a frame)
/// and then looks the element up again, as an update may have replaced it meanwhile.
async fn target(browser: &mut Browser, selector: &str) -> Option<(f64, f64)> {
    let expr = format!(
        "(async () => {{ const last = () => [...document.querySelectorAll({sel})].pop();
           if (!last()) return null; last().scrollIntoView({{block: 'center'}});
           const frame = () => new Promise((r) => requestAnimationFrame(r));
           await frame(); await frame();
           const r = last().getBoundingClientRect();
           return JSON.stringify([r.left + r.width / 2, r.top + r.height / 2]); }})()",
        sel = json!(selector)
    );
    let v = browser.eval(&expr).await;
    let parsed: Value = serde_json::from_str(v.as_str()?).ok()?;
    Some((parsed[0].as_f64()?, parsed[1].as_f64()?))
}

/// Moves the pointer over each chart part and checks the tooltip shows the values of the part
/// under the pointer (read after the move, so a live update in between cannot mislead).
pub async fn hover_values_show(browser: &mut Browser, width: u32) {
    for (name, selector) in PARTS {
        // A live update can replace the part between the move and the read (the hourly bars
        // change with every batch): then the pointer is moved again, up to three times.
        for attempt in 1..=3 {
            let (x, y) = target(browser, selector)
                .await
                .unwrap_or_else(|| panic!("{name}: nothing matches {selector} at {width}px"));
            browser
                .call(
                    "Input.dispatchMouseEvent",
                    json!({"type": "mouseMoved", "x": x, "y": y}),
                )
                .await;
            let seen = browser
                .eval(&format!(
                    "(() => {{ const t = document.getElementById('tip');
                       const el = document.elementFromPoint({x}, {y});
                       const part = el && el.closest({sel});
                       const b = t.getBoundingClientRect();
                       const inside = b.left >= 0 && b.top >= 0 && b.right <= innerWidth && b.bottom <= innerHeight;
                       return JSON.stringify([t && !t.hidden ? t.textContent : null,
                         part ? part.getAttribute('data-tip') : null, inside]); }})()",
                    sel = json!(selector)
                ))
                .await;
            let seen: Value = serde_json::from_str(seen.as_str().expect("tooltip state")).unwrap();
            let want = seen[1]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: no {selector} under the pointer at {width}px"));
            assert!(
                want.chars().any(|c| c.is_ascii_digit()),
                "{name}: the hover text holds values: {want:?}"
            );
            if seen[0].as_str() != Some(want) && attempt < 3 {
                continue;
            }
            assert_eq!(
                seen[0].as_str(),
                Some(want),
                "{name}: hovering {selector} at {width}px shows its values (attempt {attempt})"
            );
            assert_eq!(
                seen[2],
                json!(true),
                "{name}: the tooltip lies inside the {width}px viewport"
            );
            break;
        }
    }
}

/// A click on a cohort row highlights it, and only it.
pub async fn cohort_click_highlights(browser: &mut Browser) {
    let row = browser
        .eval("(() => { const all = document.querySelectorAll('#retention tr[data-cohort]'); const r = all[all.length - 1]; r.scrollIntoView({block: 'center'}); const b = r.querySelector('td.cohort').getBoundingClientRect(); return JSON.stringify([r.getAttribute('data-cohort'), b.left + b.width / 2, b.top + b.height / 2]); })()")
        .await;
    let row: Value = serde_json::from_str(row.as_str().expect("a cohort row")).unwrap();
    let (cohort, x, y) = (
        row[0].as_str().unwrap().to_string(),
        row[1].as_f64().unwrap(),
        row[2].as_f64().unwrap(),
    );
    for kind in ["mousePressed", "mouseReleased"] {
        browser
            .call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )
            .await;
    }
    // A new cohort day can shift the rows between aiming and clicking: the clicked row is the one
    // under the pointer.
    let picked = browser
        .eval(&format!(
            "(() => {{ const under = document.elementFromPoint({x}, {y}).closest('tr[data-cohort]');
               return JSON.stringify([under && under.getAttribute('data-cohort'),
                 [...document.querySelectorAll('#retention tr.picked')].map((r) => r.getAttribute('data-cohort'))]); }})()"
        ))
        .await;
    let picked: Value = serde_json::from_str(picked.as_str().expect("picked rows")).unwrap();
    assert!(
        picked[0].is_string() && picked[1] == json!([picked[0]]),
        "the clicked cohort row ({cohort} aimed at) is highlighted, and only it: {picked}"
    );
}

/// The demo badge is visible and names the simulated day the page shows as today.
pub async fn demo_badge_shows_the_simulated_date(browser: &mut Browser) {
    let badge = browser
        .eval("(() => { const b = document.getElementById('demo'); return JSON.stringify([!b.hidden && b.offsetWidth > 0, b.textContent, document.getElementById('today').textContent]); })()")
        .await;
    let badge: Value = serde_json::from_str(badge.as_str().expect("badge")).unwrap();
    let (visible, text, today) = (
        &badge[0],
        badge[1].as_str().unwrap(),
        badge[2].as_str().unwrap(),
    );
    assert_eq!(visible, &json!(true), "the demo badge is visible: {badge}");
    assert!(
        text.starts_with(&format!("demo · simulated {today}")),
        "the badge names the simulated day: {badge}"
    );
}

//! A model's chat template (Jinja, from the file) rendered over a conversation: a template
//! must compile or fail with an error, and rendering must end (no hang, no runaway output).
//! Input: the template source, then NUL-separated role/content pairs; seeds are real templates.
#![no_main]

use hearth_text::{ChatTemplate, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut fields = data.split(|&b| b == 0).map(String::from_utf8_lossy);
    let source = fields.next().unwrap_or_default();
    let rest: Vec<_> = fields.collect();
    let messages: Vec<Message> = rest
        .chunks(2)
        .map(|pair| Message::new(&pair[0], pair.get(1).map_or("", |c| c)))
        .collect();
    let Ok(template) = ChatTemplate::new(&source, "<s>", "</s>") else {
        return;
    };
    let _ = template.render(&messages, data.len() % 2 == 0);
});

//! A [`ByteSource`] backed by a JS function, so the worker decides where bytes come from
//! (IndexedDB chunks, a user's `File`) and verifies them before Rust sees them.

use hearth_gguf::{ByteSource, SourceError};
use js_sys::{Function, Promise, Uint8Array};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;

pub struct JsSource {
    /// `(offset: number, length: number) => Promise<Uint8Array>`
    read: Function,
    len: u64,
}

impl JsSource {
    pub fn new(read: Function, len: u64) -> Self {
        JsSource { read, len }
    }
}

fn message(e: JsValue) -> String {
    js_sys::Error::from(e.clone())
        .message()
        .as_string()
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

impl ByteSource for JsSource {
    fn len(&self) -> u64 {
        self.len
    }

    async fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        let promise = self
            .read
            .call2(
                &JsValue::NULL,
                &(offset as f64).into(),
                &(buf.len() as f64).into(),
            )
            .map_err(|e| SourceError(message(e)))?;
        let bytes = JsFuture::from(Promise::from(promise))
            .await
            .map_err(|e| SourceError(message(e)))?;
        let bytes = Uint8Array::new(&bytes);
        if bytes.length() as usize != buf.len() {
            return Err(SourceError(format!(
                "asked for {} bytes at offset {offset}, got {}",
                buf.len(),
                bytes.length()
            )));
        }
        bytes.copy_to(buf);
        Ok(())
    }
}

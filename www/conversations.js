// Conversations kept on this device: an IndexedDB database of its own beside the models'
// ('hearth-chats'), never sent anywhere. A conversation is { id, title, createdAt, updatedAt,
// messages: [{ role, content, stats? }] }; its title is its first message's opening words
// until the user renames it.

const DB = 'hearth-chats';
const STORE = 'conversations';

let dbPromise = null;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function openDb() {
  dbPromise ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'id' });
    req.onsuccess = () => {
      // Another tab deleting the database (delete all my data) must not wait on this one.
      req.result.onversionchange = () => { req.result.close(); dbPromise = null; };
      resolve(req.result);
    };
    req.onerror = () => reject(req.error);
  });
  return dbPromise;
}

async function run(mode, work) {
  const db = await openDb();
  const tx = db.transaction(STORE, mode);
  const result = await work(tx.objectStore(STORE));
  await new Promise((resolve, reject) => {
    tx.oncomplete = resolve;
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('the browser refused to save the conversation'));
  });
  return result;
}

/** A title from the first message: its first line, at most 60 characters. */
export function titleFrom(text) {
  const line = text.trim().split('\n')[0].trim();
  return line.length > 60 ? `${line.slice(0, 57).trimEnd()}…` : line || 'New chat';
}

/** Every conversation, newest first (by its last change). */
export async function listConversations() {
  const all = await run('readonly', (store) => request(store.getAll()));
  return all.sort((a, b) => b.updatedAt - a.updatedAt);
}

export function getConversation(id) {
  return run('readonly', (store) => request(store.get(id)));
}

/** Saves `conversation` (created or changed), stamping its change time. */
export async function saveConversation(conversation) {
  conversation.updatedAt = Date.now();
  await run('readwrite', (store) => request(store.put(conversation)));
  return conversation;
}

export function newConversation(firstMessage) {
  const now = Date.now();
  return { id: crypto.randomUUID(), title: titleFrom(firstMessage), createdAt: now, updatedAt: now, messages: [] };
}

export async function renameConversation(id, title) {
  const conversation = await getConversation(id);
  if (!conversation) return null;
  conversation.title = title.trim() || conversation.title;
  return saveConversation(conversation);
}

export function deleteConversation(id) {
  return run('readwrite', (store) => request(store.delete(id)));
}

/** Deletes every conversation: the database itself goes. */
export async function deleteAllConversations() {
  const db = await dbPromise?.catch(() => null);
  db?.close();
  dbPromise = null;
  await new Promise((resolve, reject) => {
    const req = indexedDB.deleteDatabase(DB);
    req.onsuccess = resolve;
    req.onerror = () => reject(req.error);
    req.onblocked = resolve; // completes once other tabs close their connections
  });
}

"""Security: who may call (`auth`), where secrets live (`secrets`: Key Vault or local settings
behind one interface) and the keys that protect image data (`kek`: AES key-wrap keys for blob
client-side encryption, resolved by version so rotation never breaks old blobs)."""

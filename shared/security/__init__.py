"""Security building blocks, one module each; among them `secrets` (one interface over Key Vault
and local settings for secrets that rotate) and `kek` (AES key-wrap keys for blob client-side
encryption, their rotation and the key resolver)."""

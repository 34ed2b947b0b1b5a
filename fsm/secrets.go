package fsm

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
)

// SealSecrets encrypts secrets with the cluster key (AES-256-GCM) so that
// neither the Raft log, snapshots nor the state file hold them in plain
// text. It also returns a keyed hash that is equal for equal secrets, so an
// unchanged blueprint re-applied keeps its version.
func SealSecrets(key []byte, secrets map[string]string) (sealed, hash []byte, err error) {
	if len(secrets) == 0 {
		return nil, nil, nil
	}
	var e encoder
	e.strmap(secrets)
	mac := hmac.New(sha256.New, key)
	mac.Write(e.b)
	hash = mac.Sum(nil)
	gcm, err := newGCM(key)
	if err != nil {
		return nil, nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, fmt.Errorf("seal secrets: %w", err)
	}
	plain, err := json.Marshal(secrets)
	if err != nil {
		return nil, nil, fmt.Errorf("seal secrets: %w", err)
	}
	return gcm.Seal(nonce, nonce, plain, nil), hash, nil
}

// OpenSecrets decrypts what SealSecrets sealed.
func OpenSecrets(key, sealed []byte) (map[string]string, error) {
	if len(sealed) == 0 {
		return nil, nil
	}
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < gcm.NonceSize() {
		return nil, errors.New("open secrets: truncated")
	}
	plain, err := gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], nil)
	if err != nil {
		return nil, fmt.Errorf("open secrets: %w", err)
	}
	var m map[string]string
	if err := json.Unmarshal(plain, &m); err != nil {
		return nil, fmt.Errorf("open secrets: %w", err)
	}
	return m, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	return cipher.NewGCM(block)
}

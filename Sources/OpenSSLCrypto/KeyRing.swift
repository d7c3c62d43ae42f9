import Foundation

/// The keys that encrypt secrets at rest, from `ASYNCCODE_ENCRYPTION_KEYS`: comma-separated `id:base64` entries,
/// each a 32-byte AES-256 key under a short id. The first encrypts; every one decrypts, so a new key goes first
/// and an old one stays until `asynccode keys rotate` has re-encrypted what it sealed.
public struct KeyRing: Sendable {
    /// One key. Its description names the id only.
    public struct Key: Sendable, CustomStringConvertible {
        public let id: String
        let bytes: [UInt8]
        public var description: String { "key \(id)" }
    }

    /// A sealed value and the id of the key that sealed it (stored beside it).
    public struct Sealed: Sendable, Hashable {
        public var keyID: String
        public var bytes: [UInt8]

        public init(keyID: String, bytes: [UInt8]) {
            self.keyID = keyID
            self.bytes = bytes
        }
    }

    /// Why the setting or a value cannot be used; never holds a key.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public enum Code: String, Sendable {
            case invalidSetting, unknownKey, cannotOpen
        }

        public var code: Code
        public var description: String
    }

    /// The keys, the encrypting one first.
    public let keys: [Key]

    /// The key that encrypts.
    public var current: Key { keys[0] }

    /// Parses `id:base64,id:base64` (ids: 1 to 16 of `a-z`, `0-9`, `-`, `_`, unique; keys: 32 bytes).
    public init(parsing text: String) throws(Failure) {
        var keys: [Key] = []
        for entry in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
            guard let colon = entry.firstIndex(of: ":") else {
                throw Failure(code: .invalidSetting, description: "each entry is `id:base64key`; one has no `:`")
            }
            let id = String(entry[..<colon])
            guard (1...16).contains(id.count), id.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" })
            else {
                throw Failure(code: .invalidSetting, description: "a key id must be 1 to 16 of a-z, 0-9, - and _")
            }
            guard !keys.contains(where: { $0.id == id }) else {
                throw Failure(code: .invalidSetting, description: "key id `\(id)` is given twice")
            }
            guard let data = Data(base64Encoded: String(entry[entry.index(after: colon)...])), data.count == AESGCM.keyLength else {
                throw Failure(code: .invalidSetting, description: "key `\(id)` is not 32 bytes of standard base64")
            }
            keys.append(Key(id: id, bytes: [UInt8](data)))
        }
        guard !keys.isEmpty else { throw Failure(code: .invalidSetting, description: "no key is given") }
        self.keys = keys
    }

    /// Encrypts `plaintext` with the current key; `place` (such as `user_tokens.access_token:42`) is
    /// authenticated, so the value opens only there.
    public func seal(_ plaintext: [UInt8], place: String) throws(Failure) -> Sealed {
        do {
            return Sealed(keyID: current.id, bytes: try AESGCM.seal(plaintext, key: current.bytes, associatedData: Array(place.utf8)))
        } catch {
            throw Failure(code: .cannotOpen, description: "cannot encrypt: \(error)")
        }
    }

    /// Decrypts a value sealed for `place` with any key of the ring.
    public func open(_ sealed: Sealed, place: String) throws(Failure) -> [UInt8] {
        guard let key = keys.first(where: { $0.id == sealed.keyID }) else {
            throw Failure(code: .unknownKey, description: "the value was encrypted with key `\(sealed.keyID)`, which ASYNCCODE_ENCRYPTION_KEYS does not hold")
        }
        do {
            return try AESGCM.open(sealed.bytes, key: key.bytes, associatedData: Array(place.utf8))
        } catch {
            throw Failure(code: .cannotOpen, description: "cannot decrypt a value for \(place): \(error)")
        }
    }

    /// Returns a new entry for the setting: `id:` and 32 random bytes in base64.
    public static func newEntry(id: String) throws(Failure) -> String {
        do {
            return id + ":" + Data(try AESGCM.randomBytes(AESGCM.keyLength)).base64EncodedString()
        } catch {
            throw Failure(code: .invalidSetting, description: "cannot make a key: \(error)")
        }
    }
}

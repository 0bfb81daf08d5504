package sqlext;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileTime;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.Arrays;
import java.util.Base64;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import javax.crypto.SecretKeyFactory;
import javax.crypto.spec.PBEKeySpec;
import javax.security.sasl.AuthenticationException;

import org.apache.hadoop.conf.Configurable;
import org.apache.hadoop.conf.Configuration;
import org.apache.hive.service.auth.PasswdAuthenticationProvider;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * HiveServer2 CUSTOM authentication against sqlext's password file (see sqlext/passwords.py).
 *
 * <p>Set {@code hive.server2.authentication=CUSTOM} and
 * {@code hive.server2.custom.authentication.class=sqlext.PasswordFileAuthenticator}.  The file
 * is named by the Hadoop/Hive setting {@code sqlext.password.file} or, since HiveServer2 builds
 * a fresh {@code HiveConf} for every login, by the JVM system property of the same name
 * (what {@code sqlext serve --auth password} sets).
 *
 * <p>Contract: {@link #Authenticate} returns normally only when the user has a line
 * {@code USER:pbkdf2_sha256$ITER$SALT_B64$HASH_B64} whose PBKDF2-HMAC-SHA256 of the given
 * password matches (constant-time compare).  Anything else, including a missing or malformed
 * file, throws {@link AuthenticationException} with the same message for every reason, so a
 * client cannot tell an unknown user from a wrong password.  Unknown users cost a PBKDF2 run
 * too.  Passwords are UTF-8 (see {@link #utf8}).  The file is re-read when its inode, size or
 * modification time changes, so users can be added while the server runs.  Passwords are never
 * logged.
 */
public class PasswordFileAuthenticator implements PasswdAuthenticationProvider, Configurable {
    public static final String FILE_KEY = "sqlext.password.file";
    static final int MIN_ITERATIONS = 1_000;
    static final int MAX_ITERATIONS = 10_000_000;
    private static final String REJECTED = "invalid user name or password";
    private static final Pattern USER = Pattern.compile("^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$");
    private static final Pattern ENTRY =
            Pattern.compile("^pbkdf2_sha256\\$([0-9]{1,9})\\$([A-Za-z0-9+/=]+)\\$([A-Za-z0-9+/=]+)$");
    private static final Logger LOG = LoggerFactory.getLogger(PasswordFileAuthenticator.class);
    /** Hashed when the user is unknown, so both failures take about as long. */
    private static final Entry DUMMY = dummyEntry();
    /** One parsed snapshot per file, shared by the per-login instances HiveServer2 creates. */
    private static final Map<Path, Snapshot> CACHE = new HashMap<>();

    private Configuration conf;

    /** A verified line of the file. */
    static final class Entry {
        final int iterations;
        final byte[] salt;
        final byte[] hash;

        Entry(int iterations, byte[] salt, byte[] hash) {
            this.iterations = iterations;
            this.salt = salt;
            this.hash = hash;
        }
    }

    private static final class Snapshot {
        final Object fileKey;
        final long size;
        final FileTime modified;
        final Map<String, Entry> users;

        Snapshot(BasicFileAttributes attrs, Map<String, Entry> users) {
            this.fileKey = attrs.fileKey();
            this.size = attrs.size();
            this.modified = attrs.lastModifiedTime();
            this.users = users;
        }

        boolean matches(BasicFileAttributes attrs) {
            return Objects.equals(fileKey, attrs.fileKey()) && size == attrs.size()
                    && modified.equals(attrs.lastModifiedTime());
        }
    }

    @Override
    public void setConf(Configuration conf) {
        this.conf = conf;
    }

    @Override
    public Configuration getConf() {
        return conf;
    }

    private Path file() throws AuthenticationException {
        String name = conf == null ? null : conf.getTrimmed(FILE_KEY);
        if (name == null || name.isEmpty()) {
            name = System.getProperty(FILE_KEY, "").trim();
        }
        if (name.isEmpty()) {
            LOG.error("{} is not set: every login is refused", FILE_KEY);
            throw new AuthenticationException(REJECTED);
        }
        return Paths.get(name);
    }

    @Override
    public void Authenticate(String user, String received) throws AuthenticationException {
        String password = received == null ? null : utf8(received);
        Map<String, Entry> users = users(file());
        Entry entry = user == null ? null : users.get(user);
        boolean ok = verify(password == null ? "" : password, entry == null ? DUMMY : entry);
        if (entry == null || !ok || password == null || password.isEmpty()) {
            LOG.warn("login refused for user '{}' ({})", printable(user), entry == null ? "unknown user" : "wrong password");
            throw new AuthenticationException(REJECTED);
        }
    }

    /**
     * Clients send UTF-8, but HiveServer2's PlainSaslServer (Spark 3.5's copy of Hive 2.3) turns
     * every byte into one char with {@code (char) b}: bytes 0x80-0xFF become U+FF80-U+FFFF.
     * Undo that; a string that cannot be such a result (another non-ASCII char, or bytes that are
     * not UTF-8) is returned as it is.
     */
    static String utf8(String received) {
        byte[] raw = new byte[received.length()];
        for (int i = 0; i < raw.length; i++) {
            char c = received.charAt(i);
            if (c >= 0x80 && c < 0xFF80) {
                return received;
            }
            raw[i] = (byte) c;
        }
        try {
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(raw)).toString();
        } catch (CharacterCodingException e) {
            return received;
        }
    }

    /** True if PBKDF2-HMAC-SHA256(password, entry.salt, entry.iterations) equals entry.hash. */
    static boolean verify(String password, Entry entry) {
        char[] chars = password.toCharArray();
        PBEKeySpec spec = new PBEKeySpec(chars, entry.salt, entry.iterations, entry.hash.length * 8);
        try {
            byte[] actual = SecretKeyFactory.getInstance("PBKDF2WithHmacSHA256").generateSecret(spec).getEncoded();
            return MessageDigest.isEqual(actual, entry.hash);
        } catch (GeneralSecurityException e) {
            LOG.error("PBKDF2WithHmacSHA256 failed", e);
            return false;
        } finally {
            spec.clearPassword();
            Arrays.fill(chars, '\0');
        }
    }

    /** The users of {@code path}, re-read if the file changed since the last login. */
    static Map<String, Entry> users(Path path) throws AuthenticationException {
        synchronized (CACHE) {
            try {
                BasicFileAttributes attrs = Files.readAttributes(path, BasicFileAttributes.class);
                Snapshot cached = CACHE.get(path);
                if (cached != null && cached.matches(attrs)) {
                    return cached.users;
                }
                List<String> lines = Files.readAllLines(path, StandardCharsets.UTF_8);
                // read the attributes again: a file replaced while reading is re-read next time
                Snapshot fresh = new Snapshot(Files.readAttributes(path, BasicFileAttributes.class), parse(lines, path));
                CACHE.put(path, fresh);
                LOG.info("password file {}: {} user(s)", path, fresh.users.size());
                return fresh.users;
            } catch (NoSuchFileException e) {
                LOG.error("password file {} does not exist: every login is refused", path);
            } catch (IOException e) {
                LOG.error("password file {} is unreadable ({}): every login is refused", path, e.getMessage());
            }
            throw new AuthenticationException(REJECTED);
        }
    }

    /** Parse the file's lines; a malformed line is skipped with a warning naming its number only. */
    static Map<String, Entry> parse(List<String> lines, Path source) {
        Map<String, Entry> users = new HashMap<>();
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i).trim();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            int colon = line.indexOf(':');
            Entry entry = colon > 0 ? parseEntry(line.substring(colon + 1)) : null;
            String user = colon > 0 ? line.substring(0, colon) : "";
            if (entry == null || !USER.matcher(user).matches() || users.containsKey(user)) {
                LOG.warn("password file {} line {}: not a valid USER:pbkdf2_sha256$... line, ignored", source, i + 1);
                continue;
            }
            users.put(user, entry);
        }
        return Collections.unmodifiableMap(users);
    }

    static Entry parseEntry(String encoded) {
        Matcher m = ENTRY.matcher(encoded);
        if (!m.matches()) {
            return null;
        }
        try {
            int iterations = Integer.parseInt(m.group(1));
            byte[] salt = Base64.getDecoder().decode(m.group(2));
            byte[] hash = Base64.getDecoder().decode(m.group(3));
            if (iterations < MIN_ITERATIONS || iterations > MAX_ITERATIONS || salt.length == 0 || hash.length < 16) {
                return null;
            }
            return new Entry(iterations, salt, hash);
        } catch (IllegalArgumentException e) {
            return null;
        }
    }

    private static Entry dummyEntry() {
        byte[] salt = new byte[16];
        new SecureRandom().nextBytes(salt);
        return new Entry(600_000, salt, new byte[32]);
    }

    private static String printable(String user) {
        if (user == null) {
            return "";
        }
        String cut = user.length() > 64 ? user.substring(0, 64) + "..." : user;
        return cut.replaceAll("[^\\x20-\\x7e]", "?");
    }
}

package sqlext;

import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.hadoop.hive.ql.exec.UDFArgumentException;
import org.apache.hadoop.hive.serde2.objectinspector.ConstantObjectInspector;
import org.apache.hadoop.hive.serde2.objectinspector.ObjectInspector;
import org.apache.spark.SparkEnv;
import org.apache.spark.TaskContext;

/**
 * The JVM level of the prediction cache: (image bytes, model tag) -> {label, probability, model},
 * one bounded LRU per JVM (the driver in local mode, each executor on a cluster).
 *
 * <p>It answers a repeated query before the image bytes leave the JVM: {@link CacheProbeUDF}
 * replaces a cached row's content by NULL in what is sent to the Python worker, and
 * {@link CacheFillUDF} puts the cached prediction back (or stores a fresh one).  The entry a probe
 * found is pinned for the rest of its task, so an eviction between probe and fill cannot lose a
 * row; a task's pins are bounded by its input split and dropped when it completes.
 *
 * <p>Keys are content-addressed (SHA-256 of the bytes, first 16 bytes, plus the model tag: a
 * digest of the bundle's manifest), so an entry is never served for other bytes or another model.
 * Each image is hashed once: the probe passes its digest to the Python worker (which keys its own
 * cache levels with it) and the worker returns it with the prediction, for the fill.
 * Size: {@code spark.sqlext.predictionCache.entries} (default 50000, ~250 bytes each).
 */
public final class PredictionCache {
    public static final String ENTRIES_CONF = "spark.sqlext.predictionCache.entries";
    static final int DEFAULT_ENTRIES = 50000;

    private static Map<Key, Object[]> lru;
    private static final ConcurrentHashMap<Long, ConcurrentHashMap<Key, Object[]>> PINS = new ConcurrentHashMap<>();

    private PredictionCache() {
    }

    static final class Key {
        final long high;
        final long low;
        final String tag;

        /** {@code digest}: the first 16 bytes of the image's SHA-256 ({@link #digest}). */
        Key(byte[] digest, String tag) {
            long h = 0;
            long l = 0;
            for (int i = 0; i < 8; i++) {
                h = (h << 8) | (digest[i] & 0xff);
                l = (l << 8) | (digest[i + 8] & 0xff);
            }
            this.high = h;
            this.low = l;
            this.tag = tag;
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Key && ((Key) o).high == high && ((Key) o).low == low && ((Key) o).tag.equals(tag);
        }

        @Override
        public int hashCode() {
            return (int) (high ^ (high >>> 32)) * 31 + tag.hashCode();
        }
    }

    private static final ThreadLocal<MessageDigest> SHA256 = ThreadLocal.withInitial(() -> {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    });

    static final int DIGEST_BYTES = 16;

    /** The content key of an image: the first 16 bytes of its SHA-256, as the Python workers compute it. */
    static byte[] digest(byte[] content) {
        return java.util.Arrays.copyOf(SHA256.get().digest(content), DIGEST_BYTES);
    }

    /** The model tag argument of the cache UDFs: a non-NULL string literal. */
    static String tagArgument(ObjectInspector inspector, String function) throws UDFArgumentException {
        if (!(inspector instanceof ConstantObjectInspector)) {
            throw new UDFArgumentException(function + ": the model tag must be a string literal");
        }
        Object value = ((ConstantObjectInspector) inspector).getWritableConstantValue();
        if (value == null) {
            throw new UDFArgumentException(function + ": the model tag must not be NULL");
        }
        return value.toString();
    }

    private static synchronized Map<Key, Object[]> lru() {
        if (lru == null) {
            SparkEnv env = SparkEnv.get();
            int entries = env == null ? DEFAULT_ENTRIES : env.conf().getInt(ENTRIES_CONF, DEFAULT_ENTRIES);
            lru = new LinkedHashMap<Key, Object[]>(1024, 0.75f, true) {
                @Override
                protected boolean removeEldestEntry(Map.Entry<Key, Object[]> eldest) {
                    return size() > entries;
                }
            };
        }
        return lru;
    }

    /** The cached prediction for this row, pinned for the current task; null on a miss. */
    static Object[] probe(Key key) {
        Object[] value;
        synchronized (PredictionCache.class) {
            value = lru().get(key);
        }
        TaskContext task = TaskContext.get();
        if (value == null || task == null) {
            return null;
        }
        pins(task).put(key, value);
        return value;
    }

    /** What a probe pinned for this key in the current task, or null. */
    static Object[] pinned(Key key) {
        TaskContext task = TaskContext.get();
        if (task == null) {
            return null;
        }
        ConcurrentHashMap<Key, Object[]> taskPins = PINS.get(task.taskAttemptId());
        return taskPins == null ? null : taskPins.get(key);
    }

    static void store(Key key, Object[] value) {
        synchronized (PredictionCache.class) {
            lru().put(key, value);
        }
    }

    private static ConcurrentHashMap<Key, Object[]> pins(TaskContext task) {
        long id = task.taskAttemptId();
        ConcurrentHashMap<Key, Object[]> taskPins = PINS.get(id);
        if (taskPins == null) {
            taskPins = new ConcurrentHashMap<>();
            if (PINS.putIfAbsent(id, taskPins) == null) {
                task.addTaskCompletionListener(new org.apache.spark.util.TaskCompletionListener() {
                    @Override
                    public void onTaskCompletion(TaskContext context) {
                        PINS.remove(id);
                    }
                });
            } else {
                taskPins = PINS.get(id);
            }
        }
        return taskPins;
    }
}

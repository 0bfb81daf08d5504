package sqlext;

import java.util.Arrays;
import java.util.List;

import org.apache.hadoop.hive.ql.exec.UDFArgumentException;
import org.apache.hadoop.hive.ql.metadata.HiveException;
import org.apache.hadoop.hive.ql.udf.UDFType;
import org.apache.hadoop.hive.serde2.objectinspector.ObjectInspector;
import org.apache.hadoop.hive.serde2.objectinspector.ObjectInspectorFactory;
import org.apache.hadoop.hive.serde2.objectinspector.PrimitiveObjectInspector;
import org.apache.hadoop.hive.serde2.objectinspector.StructField;
import org.apache.hadoop.hive.serde2.objectinspector.StructObjectInspector;
import org.apache.hadoop.hive.serde2.objectinspector.primitive.BinaryObjectInspector;
import org.apache.hadoop.hive.serde2.objectinspector.primitive.PrimitiveObjectInspectorFactory;

/**
 * {@code sqlext_cache_fill(tag, prediction)}: the row's {@code STRUCT<label, probability, model>}, from the
 * Python worker's {@code prediction} {@code STRUCT<label, probability, model, digest>} (digest: what
 * {@link CacheProbeUDF} gave the worker for the row): the worker's prediction when it made one (stored in
 * {@link PredictionCache}), else what the probe found and pinned for this digest, else NULL (an
 * undecodable image: never cached).
 */
@UDFType(deterministic = true, stateful = false)
public class CacheFillUDF extends CacheUDF {
    static final List<String> FIELDS = Arrays.asList("label", "probability", "model");

    private transient String tag;
    private transient StructObjectInspector predictionInspector;
    private transient List<? extends StructField> predictionFields;

    @Override
    String name() {
        return "sqlext_cache_fill";
    }

    @Override
    public ObjectInspector initialize(ObjectInspector[] arguments) throws UDFArgumentException {
        if (arguments.length != 2 || !(arguments[1] instanceof StructObjectInspector)) {
            throw new UDFArgumentException(
                    "sqlext_cache_fill(tag STRING literal, prediction STRUCT<label, probability, model, digest>)");
        }
        tag = tagArgument(arguments[0]);
        predictionInspector = (StructObjectInspector) arguments[1];
        predictionFields = predictionInspector.getAllStructFieldRefs();
        if (predictionFields.size() != FIELDS.size() + 1
                || !(predictionFields.get(FIELDS.size()).getFieldObjectInspector() instanceof BinaryObjectInspector)) {
            throw new UDFArgumentException("sqlext_cache_fill: prediction must have fields " + FIELDS + " + digest");
        }
        return ObjectInspectorFactory.getStandardStructObjectInspector(FIELDS, Arrays.asList(
                PrimitiveObjectInspectorFactory.javaStringObjectInspector,
                PrimitiveObjectInspectorFactory.javaDoubleObjectInspector,
                PrimitiveObjectInspectorFactory.javaStringObjectInspector));
    }

    @Override
    public Object evaluate(DeferredObject[] arguments) throws HiveException {
        Object prediction = arguments[1].get();
        if (prediction == null) {
            return null;
        }
        Object[] row = new Object[FIELDS.size() + 1];
        for (int i = 0; i < row.length; i++) {
            StructField field = predictionFields.get(i);
            row[i] = ((PrimitiveObjectInspector) field.getFieldObjectInspector())
                    .getPrimitiveJavaObject(predictionInspector.getStructFieldData(prediction, field));
        }
        byte[] digest = (byte[]) row[FIELDS.size()];
        if (digest == null || digest.length < PredictionCache.DIGEST_BYTES) {
            return null;
        }
        PredictionCache.Key key = new PredictionCache.Key(digest, tag);
        if (row[0] != null) {
            Object[] value = Arrays.copyOf(row, FIELDS.size());
            PredictionCache.store(key, value);
            return value;
        }
        return PredictionCache.pinned(key);
    }
}

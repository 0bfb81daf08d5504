package sqlext;

import java.util.Arrays;
import java.util.List;

import org.apache.hadoop.hive.ql.exec.UDFArgumentException;
import org.apache.hadoop.hive.ql.metadata.HiveException;
import org.apache.hadoop.hive.ql.udf.UDFType;
import org.apache.hadoop.hive.ql.udf.generic.GenericUDF;
import org.apache.hadoop.hive.serde2.objectinspector.ObjectInspector;
import org.apache.hadoop.hive.serde2.objectinspector.ObjectInspectorFactory;
import org.apache.hadoop.hive.serde2.objectinspector.PrimitiveObjectInspector;
import org.apache.hadoop.hive.serde2.objectinspector.StructField;
import org.apache.hadoop.hive.serde2.objectinspector.StructObjectInspector;
import org.apache.hadoop.hive.serde2.objectinspector.primitive.BinaryObjectInspector;
import org.apache.hadoop.hive.serde2.objectinspector.primitive.PrimitiveObjectInspectorFactory;

/**
 * {@code sqlext_cache_fill(content, tag, prediction)}: the row's prediction — the Python worker's
 * {@code prediction} when it sent one (stored in {@link PredictionCache}), else what
 * {@link CacheProbeUDF} found and pinned for this row, else NULL (an undecodable image: never cached).
 */
@UDFType(deterministic = true, stateful = false)
public class CacheFillUDF extends GenericUDF {
    static final List<String> FIELDS = Arrays.asList("label", "probability", "model");

    private transient BinaryObjectInspector contentInspector;
    private transient String tag;
    private transient StructObjectInspector predictionInspector;
    private transient List<? extends StructField> predictionFields;

    @Override
    public ObjectInspector initialize(ObjectInspector[] arguments) throws UDFArgumentException {
        if (arguments.length != 3 || !(arguments[0] instanceof BinaryObjectInspector)
                || !(arguments[2] instanceof StructObjectInspector)) {
            throw new UDFArgumentException(
                    "sqlext_cache_fill(content BINARY, tag STRING literal, prediction STRUCT<label, probability, model>)");
        }
        contentInspector = (BinaryObjectInspector) arguments[0];
        tag = PredictionCache.tagArgument(arguments[1], "sqlext_cache_fill");
        predictionInspector = (StructObjectInspector) arguments[2];
        predictionFields = predictionInspector.getAllStructFieldRefs();
        if (predictionFields.size() != FIELDS.size()) {
            throw new UDFArgumentException("sqlext_cache_fill: prediction must have fields " + FIELDS);
        }
        return ObjectInspectorFactory.getStandardStructObjectInspector(FIELDS, Arrays.asList(
                PrimitiveObjectInspectorFactory.javaStringObjectInspector,
                PrimitiveObjectInspectorFactory.javaDoubleObjectInspector,
                PrimitiveObjectInspectorFactory.javaStringObjectInspector));
    }

    @Override
    public Object evaluate(DeferredObject[] arguments) throws HiveException {
        byte[] content = contentInspector.getPrimitiveJavaObject(arguments[0].get());
        Object prediction = arguments[2].get();
        if (content == null) {
            return null;
        }
        PredictionCache.Key key = new PredictionCache.Key(content, tag);
        if (prediction != null) {
            Object[] row = new Object[FIELDS.size()];
            for (int i = 0; i < row.length; i++) {
                StructField field = predictionFields.get(i);
                row[i] = ((PrimitiveObjectInspector) field.getFieldObjectInspector())
                        .getPrimitiveJavaObject(predictionInspector.getStructFieldData(prediction, field));
            }
            if (row[0] != null) {
                PredictionCache.store(key, row);
                return row;
            }
        }
        return PredictionCache.pinned(key);
    }

    @Override
    public String getDisplayString(String[] children) {
        return "sqlext_cache_fill(" + String.join(", ", children) + ")";
    }
}

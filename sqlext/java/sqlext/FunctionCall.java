package sqlext;

import java.util.List;
import java.util.Objects;
import java.util.stream.Collectors;

import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.codegen.CodegenContext;
import org.apache.spark.sql.catalyst.expressions.codegen.ExprCode;
import org.apache.spark.sql.catalyst.util.package$;
import org.apache.spark.sql.types.DataType;

import scala.collection.IndexedSeq;
import scala.collection.Seq;

/**
 * The call {@code name(arguments)} as the user wrote it, evaluated as {@code child}, the expression
 * the builder expanded it to.  Only its SQL text differs from the child's: Spark titles an unaliased
 * column (and names it in DESCRIBE, views, BI tools) after that text, so
 * {@code SELECT image_label(content)} gives the column {@code image_label(content)}, not the
 * prediction cache's probe and fill around the model call.  EXPLAIN still shows the expansion.
 */
public class FunctionCall extends Expression implements java.io.Serializable {
    private final String name;
    private final String call;
    private final Expression child;
    private final Seq<Expression> children;

    /** {@code call}: the text Spark would print for the call, e.g. {@code image_label(content)}. */
    public FunctionCall(String name, String call, Expression child) {
        this.name = name;
        this.call = call;
        this.child = child;
        this.children = scala.collection.immutable.List$.MODULE$.<Expression>empty().$colon$colon(child);
    }

    /** {@code name(arguments)} written as Spark titles a built-in function's column (qualifiers dropped). */
    public static FunctionCall of(String name, List<Expression> arguments, Expression child) {
        String text = arguments.stream().map(a -> package$.MODULE$.toPrettySQL(a))
                .collect(Collectors.joining(", ", name + "(", ")"));
        return new FunctionCall(name, text, child);
    }

    public Expression child() { return child; }
    @Override public Seq<Expression> children() { return children; }
    @Override public DataType dataType() { return child.dataType(); }
    @Override public boolean nullable() { return child.nullable(); }
    @Override public Object eval(InternalRow input) { return child.eval(input); }
    @Override public ExprCode doGenCode(CodegenContext ctx, ExprCode ev) { return child.genCode(ctx); }
    @Override public String prettyName() { return name; }
    @Override public String sql() { return call; }

    @Override
    public Expression withNewChildrenInternal(IndexedSeq<Expression> newChildren) {
        return new FunctionCall(name, call, newChildren.apply(0));
    }

    /** EXPLAIN shows {@code name(expansion)}. */
    @Override public scala.collection.Iterator<Object> stringArgs() {
        return scala.collection.Iterator$.MODULE$.single(child);
    }

    @Override public int productArity() { return 3; }

    @Override
    public Object productElement(int n) {
        switch (n) {
            case 0: return name;
            case 1: return call;
            case 2: return child;
            default: throw new IndexOutOfBoundsException(String.valueOf(n));
        }
    }

    @Override public boolean canEqual(Object other) { return other instanceof FunctionCall; }

    @Override
    public boolean equals(Object other) {
        if (!(other instanceof FunctionCall)) {
            return false;
        }
        FunctionCall that = (FunctionCall) other;
        return name.equals(that.name) && call.equals(that.call) && child.equals(that.child);
    }

    @Override public int hashCode() { return Objects.hash(name, call, child); }
}

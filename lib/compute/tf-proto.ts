/**
 * The few TensorFlow protocol buffers a compiled step is made of (FunctionDef, NodeDef, AttrValue, TensorProto)
 * and the one it reads (OpList, from the patched binding's getAllOpList), as protobufjs types. Field numbers are
 * TensorFlow's (tensorflow/core/framework/*.proto); only the fields used here are declared, so other fields of a
 * decoded OpList are skipped. DataType is declared int32: the same varint on the wire, TensorFlow's numbers
 * (DT_FLOAT 1, DT_DOUBLE 2, DT_INT32 3, DT_UINT8 4, DT_INT64 9, DT_BOOL 10) are the binding's TF_DataType values.
 */
import protobuf from 'protobufjs';

const SCHEMA = `
syntax = "proto3";
package tensorflow;

message TensorShapeProto {
  message Dim { int64 size = 1; string name = 2; }
  repeated Dim dim = 2;
  bool unknown_rank = 3;
}

message TensorProto {
  int32 dtype = 1;
  TensorShapeProto tensor_shape = 2;
  bytes tensor_content = 4;
}

message NameAttrList {
  string name = 1;
  map<string, AttrValue> attr = 2;
}

message AttrValue {
  message ListValue {
    repeated bytes s = 2;
    repeated int64 i = 3;
    repeated float f = 4;
    repeated bool b = 5;
    repeated int32 type = 6;
    repeated TensorShapeProto shape = 7;
    repeated TensorProto tensor = 8;
  }
  oneof value {
    bytes s = 2;
    int64 i = 3;
    float f = 4;
    bool b = 5;
    int32 type = 6;
    TensorShapeProto shape = 7;
    TensorProto tensor = 8;
    ListValue list = 1;
    NameAttrList func = 10;
  }
}

message NodeDef {
  string name = 1;
  string op = 2;
  repeated string input = 3;
  string device = 4;
  map<string, AttrValue> attr = 5;
}

message OpDef {
  message ArgDef {
    string name = 1;
    int32 type = 3;
    string type_attr = 4;
    string number_attr = 5;
    string type_list_attr = 6;
  }
  message AttrDef {
    string name = 1;
    string type = 2;
    AttrValue default_value = 3;
  }
  string name = 1;
  repeated ArgDef input_arg = 2;
  repeated ArgDef output_arg = 3;
  repeated AttrDef attr = 4;
  bool is_stateful = 17;
}

message OpList { repeated OpDef op = 1; }

message FunctionDef {
  OpDef signature = 1;
  map<string, AttrValue> attr = 5;
  repeated NodeDef node_def = 3;
  map<string, string> ret = 4;
}
`;

const root = protobuf.parse(SCHEMA, { keepCase: true }).root;

export const FunctionDefType = root.lookupType('tensorflow.FunctionDef');
export const OpListType = root.lookupType('tensorflow.OpList');

/** An AttrValue as protobufjs takes it (one field of the oneof set). */
export interface AttrValue {
  s?: Uint8Array;
  i?: number;
  f?: number;
  b?: boolean;
  type?: number;
  shape?: TensorShape;
  tensor?: TensorProtoValue;
  list?: {
    s?: Uint8Array[];
    i?: number[];
    f?: number[];
    b?: boolean[];
    type?: number[];
    shape?: TensorShape[];
  };
}

export interface TensorShape {
  dim?: { size: number }[];
  unknown_rank?: boolean;
}

export interface TensorProtoValue {
  dtype: number;
  tensor_shape: TensorShape;
  tensor_content: Uint8Array;
}

export interface ArgDef {
  name: string;
  type?: number;
  type_attr?: string;
  number_attr?: string;
  type_list_attr?: string;
}

export interface OpDef {
  name: string;
  input_arg?: ArgDef[];
  output_arg?: ArgDef[];
  attr?: { name: string; type: string; default_value?: AttrValue }[];
  is_stateful?: boolean;
}

export interface NodeDef {
  name: string;
  op: string;
  input: string[];
  attr: Record<string, AttrValue>;
}

export interface FunctionDef {
  signature: { name: string; input_arg: ArgDef[]; output_arg: ArgDef[] };
  attr: Record<string, AttrValue>;
  node_def: NodeDef[];
  ret: Record<string, string>;
}

export function shapeProto(shape: readonly number[]): TensorShape {
  return { dim: shape.map((size) => ({ size })) };
}

/** Every registered op's definition by name, decoded from a serialized OpList. */
export function decodeOpList(bytes: Uint8Array): Map<string, OpDef> {
  const list = OpListType.toObject(OpListType.decode(bytes), { longs: Number, arrays: true }) as {
    op: OpDef[];
  };
  return new Map(list.op.map((op) => [op.name, op]));
}

export function encodeFunctionDef(fn: FunctionDef): Uint8Array {
  const err = FunctionDefType.verify(fn);
  if (err) throw new Error(`FunctionDef: ${err}`);
  return FunctionDefType.encode(FunctionDefType.fromObject(fn)).finish();
}

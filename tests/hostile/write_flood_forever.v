// Unbounded output at time zero, never yielding.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  initial forever $write("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
  assign y = a ^ b;
endmodule

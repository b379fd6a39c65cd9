// Non-ASCII inside comments is fine: y ≥ 0, café.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  assign y = a ^ b; // ✓
endmodule

// Token pasting assembles a forbidden name from harmless pieces.
`define JOIN(p, q) p``q
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  assign y = `JOIN(go, od1).y;
endmodule
